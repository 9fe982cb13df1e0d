import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { Resource } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { WorkflowClientInterceptor } from '@temporalio/client';
import { OpenTelemetryWorkflowClientInterceptor } from '@temporalio/interceptors-opentelemetry/lib/client';
import { makeWorkflowExporter, OpenTelemetryActivityInboundInterceptor, OpenTelemetryActivityOutboundInterceptor } from '@temporalio/interceptors-opentelemetry/lib/worker';
import type { ActivityInterceptorsFactory, InjectedSinks } from '@temporalio/worker';

/**
 * OpenTelemetry tracing through Temporal's interceptors, exported over OTLP/HTTP: a span for each workflow start
 * and signal from the API, for each workflow run (exported from the sandbox through a sink) and for each activity.
 * Off unless asked for. The tracer is handed to the interceptors rather than registered globally, so a process
 * (a test) may build more than one.
 */
export interface TracingSettings {
  /** OTLP/HTTP base URL (`OTEL_EXPORTER_OTLP_ENDPOINT`); spans go to `<endpoint>/v1/traces`. */
  endpoint: string;
  serviceName: string;
}

export interface Tracing {
  clientInterceptors: WorkflowClientInterceptor[];
  activityInterceptors: ActivityInterceptorsFactory[];
  /** Workflow interceptor modules: only in a bundle built with tracing on. */
  workflowModules: string[];
  sinks: InjectedSinks<Record<string, never>> & Record<string, unknown>;
  /** Sends what is still buffered. */
  flush(): Promise<void>;
  shutdown(): Promise<void>;
}

const WORKFLOW_INTERCEPTORS = require.resolve('@temporalio/interceptors-opentelemetry/lib/workflow-interceptors');

/** `PVEFLOW_TRACING=otlp` or an `OTEL_EXPORTER_OTLP_ENDPOINT` turns tracing on; otherwise there is none. */
export function tracingSettingsFrom(config: { PVEFLOW_TRACING?: 'off' | 'otlp'; OTEL_EXPORTER_OTLP_ENDPOINT?: string; OTEL_SERVICE_NAME?: string }): TracingSettings | undefined {
  if (config.PVEFLOW_TRACING === 'off') return undefined;
  if (!config.OTEL_EXPORTER_OTLP_ENDPOINT && config.PVEFLOW_TRACING !== 'otlp') return undefined;
  return { endpoint: config.OTEL_EXPORTER_OTLP_ENDPOINT ?? 'http://localhost:4318', serviceName: config.OTEL_SERVICE_NAME ?? 'pveflow' };
}

export function createTracing(settings: TracingSettings, processor?: SpanProcessor): Tracing {
  const resource = new Resource({ 'service.name': settings.serviceName });
  const spanProcessor = processor ?? new BatchSpanProcessor(new OTLPTraceExporter({ url: `${settings.endpoint.replace(/\/+$/, '')}/v1/traces`, timeoutMillis: 10_000 }));
  const provider = new BasicTracerProvider({ resource, spanProcessors: [spanProcessor] });
  const tracer = provider.getTracer('pveflow');
  return {
    clientInterceptors: [new OpenTelemetryWorkflowClientInterceptor({ tracer })],
    activityInterceptors: [
      (ctx) => ({
        inbound: new OpenTelemetryActivityInboundInterceptor(ctx, { tracer }),
        outbound: new OpenTelemetryActivityOutboundInterceptor(ctx),
      }),
    ],
    workflowModules: [WORKFLOW_INTERCEPTORS],
    sinks: { exporter: makeWorkflowExporter(spanProcessor, resource) } as unknown as Tracing['sinks'],
    flush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
}
