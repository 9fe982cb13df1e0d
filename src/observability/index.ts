/** Logs and metrics: what an operator reads and scrapes. Secrets never leave through either. */
export { createLogger, silentLogger, type Logger, type LoggerOptions, type LogFields, type LogLevel } from './log';
export { createRedactor, isSecretKey, redactText, REDACTED, type Redactor, type RedactorOptions } from './redact';
export { createMetricsRegistry, type MetricsRegistry } from './registry';
export {
  createPveflowMetrics,
  measureUpstreamCall,
  pveOperation,
  upstreamCallRecorder,
  upstreamErrorClass,
  type MetricsOptions,
  type UpstreamCallHook,
  type PveflowMetrics,
  type SyncDriftKind,
  type UpstreamSystem,
} from './metrics';
export { metricsEndpoint, type MetricsEndpointOptions } from './metricsEndpoint';
export { httpMetrics } from './httpMetrics';
export { requestCountsFromVisibility } from './requestCounts';
