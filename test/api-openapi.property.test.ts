import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import fc from 'fast-check';
import { createApp } from '../src/api/app';
import { ApiKeyStore, generateApiKey } from '../src/api/auth/apiKeys';
import { signWebhook } from '../src/api/intake/webhookSignature';
import { defaultRequestPolicy } from '../src/domain/requestPolicyRules';
import { DATE_TIME_PATTERN } from '../src/domain/deviceRequest';
import { requireTemporalBinary } from '../src/temporal/binaries';
import { searchAttributeDefinitions } from '../src/contracts/searchAttributes';
import { ResponseChecker, type OpenApiDocument } from './support/openapiResponses';
import { quietLogger } from './support/quietLogger';
import { validRequestBody } from './support/requests';
import { apiRequestDriver, keyedApiCall } from './support/apiRequestDriver';

/**
 * Requests generated from the OpenAPI document the API serves — its paths, parameters and body schemas, nothing
 * written by hand for one operation — sent to the API on a real dev server (with a stand-in request workflow that
 * stays Pending). Every answer must be one the document describes (ajv over its schemas), never a 500; and a body the
 * document calls valid may be refused only by a rule the document names (a `rule` its descriptions state, or a page token not
 * handed out), never by a check the document does not state.
 */
const RUNS = Number(process.env.PVEFLOW_OPENAPI_RUNS ?? 300);
const SECRET = `whsec-${generateApiKey()}`;
const operator = { id: 'ops', role: 'operator' as const, key: generateApiKey() };
const DAY = 24 * 3600_000;

type Schema = Record<string, any>;

/** An arbitrary of values valid under `schema` (the subset of JSON Schema the document uses). */
function valuesOf(schema: Schema, doc: OpenApiDocument): fc.Arbitrary<unknown> {
  if (schema.$ref) return valuesOf(resolve(schema.$ref, doc), doc);
  if (schema.allOf) return valuesOf(merge(schema.allOf.map((s: Schema) => (s.$ref ? resolve(s.$ref, doc) : s))), doc);
  if (schema.enum) return fc.constantFrom(...schema.enum);
  const alternatives = (schema.anyOf ?? schema.oneOf) as Schema[] | undefined;
  if (alternatives && schema.type) {
    // Alternatives beside a type narrow it (an object needing one of some keys): each is the schema with its part added.
    const { anyOf: _anyOf, oneOf: _oneOf, ...base } = schema;
    return fc.oneof(...alternatives.map((alt) => valuesOf({ ...base, ...alt, required: [...(base.required ?? []), ...(alt.required ?? [])] }, doc)));
  }
  if (alternatives) return fc.oneof(...alternatives.map((s) => valuesOf(s, doc)));
  switch (schema.type) {
    case 'object': {
      const props = Object.fromEntries(Object.entries(schema.properties ?? {}).map(([k, s]) => [k, valuesOf(s as Schema, doc)]));
      return fc.record(props, { requiredKeys: schema.required ?? [] });
    }
    case 'array':
      return fc.array(valuesOf(schema.items ?? {}, doc), { minLength: schema.minItems ?? 0, maxLength: Math.min(schema.maxItems ?? 3, Math.max(3, schema.minItems ?? 0)) });
    case 'integer':
      return fc.integer({ min: schema.minimum ?? -1e6, max: schema.maximum ?? 1e6 });
    case 'number':
      return fc.double({ min: schema.minimum ?? -1e6, max: schema.maximum ?? 1e6, noNaN: true });
    case 'boolean':
      return fc.boolean();
    case 'string':
      return stringsOf(schema);
    default:
      return fc.constant({});
  }
}

function stringsOf(schema: Schema): fc.Arbitrary<string> {
  const fits = (s: string) => s.length >= (schema.minLength ?? 0) && s.length <= (schema.maxLength ?? Infinity);
  // fast-check cannot generate from lookaheads (the email's length limits): generate without them, keep what matches.
  const full = schema.pattern ? new RegExp(schema.pattern) : undefined;
  const byPattern = full
    ? fc.stringMatching(new RegExp(schema.pattern.replace(/\(\?=[^()]*\)/g, ''))).filter((s) => fits(s) && full.test(s))
    : fc.string({ minLength: schema.minLength ?? 0, maxLength: Math.min(schema.maxLength ?? 40, 40) });
  // Dates near now as well as anywhere the pattern allows: most of a period's rules are about now.
  if (schema.format === 'date-time' || schema.pattern === DATE_TIME_PATTERN.source)
    return fc.oneof(
      byPattern,
      fc.integer({ min: -2 * DAY, max: 120 * DAY }).map((ms) => new Date(Date.now() + ms).toISOString()),
    );
  return byPattern;
}

function resolve(ref: string, doc: OpenApiDocument): Schema {
  return ref
    .replace(/^#\//, '')
    .split('/')
    .reduce((o: any, p) => o?.[p], doc) as Schema;
}

function merge(parts: Schema[]): Schema {
  return parts.reduce((a, b) => ({ ...a, ...b, properties: { ...a.properties, ...b.properties }, required: [...new Set([...(a.required ?? []), ...(b.required ?? [])])] }), {});
}

interface Generated {
  method: string;
  template: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
  bodyValid: boolean;
}

describe('the API against requests generated from its OpenAPI document', () => {
  let env: TestWorkflowEnvironment;
  let worker: Worker;
  let running: Promise<void>;
  let server: Server;
  let base: string;
  let doc: OpenApiDocument;
  let checker: ResponseChecker;
  const known: { serial: string[]; id: string[] } = { serial: [], id: [] };

  before(async () => {
    env = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path: requireTemporalBinary('temporal') }, searchAttributes: searchAttributeDefinitions },
    });
    const taskQueue = `openapi-${process.pid}`;
    const bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('./support/pendingRequestWorkflow'), logger: quietLogger });
    worker = await Worker.create({ connection: env.nativeConnection, namespace: 'default', taskQueue, workflowBundle: bundle });
    running = worker.run();
    const app = createApp({ client: env.client, taskQueue, policy: defaultRequestPolicy, apiKeys: new ApiKeyStore([operator]), webhookSecret: SECRET, timings: { writesPerMinute: 0, temporalTimeoutMs: 5_000 } });
    server = await new Promise<Server>((ok) => {
      const s = app.listen(0, '127.0.0.1', () => ok(s));
    });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    doc = (await (await fetch(`${base}/api/openapi.json`)).json()) as OpenApiDocument;
    checker = new ResponseChecker(doc);
    // A request and a class that exist, so that generated paths reach them as well as unknown ones.
    const period = { start: new Date(Date.now() + DAY).toISOString(), end: new Date(Date.now() + 3 * DAY).toISOString() };
    const requests = apiRequestDriver(keyedApiCall(() => base, operator.key));
    known.serial.push((await requests.startPending(validRequestBody({ period }))).serial);
    known.id.push((await requests.startClass({ ...validRequestBody({ period }), name: 'lab' }, 2)).classId);
  });

  after(async () => {
    if (server)
      await new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      });
    worker?.shutdown();
    await running;
    await env?.teardown();
  });

  /** Every operation of the document as an arbitrary of requests to it. */
  const requests = (): fc.Arbitrary<Generated> => {
    const ops: Array<fc.Arbitrary<Generated>> = [];
    for (const [template, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item) as Array<[string, any]>) {
        const params: Schema[] = op.parameters ?? [];
        const pathParams: Record<string, fc.Arbitrary<string>> = Object.fromEntries(
          params
            .filter((p) => p.in === 'path')
            .map((p) => {
              // Values that exist, beside generated ones; a made-up one only where the document allows any string.
              const fixed = (known as Record<string, string[]>)[p.name] ?? (p.schema.pattern ? undefined : ['xy']);
              return [p.name, fixed ? fc.oneof(stringsOf(p.schema), fc.constantFrom(...fixed)) : stringsOf(p.schema)];
            }),
        );
        const query: Record<string, fc.Arbitrary<string>> = Object.fromEntries(params.filter((p) => p.in === 'query').map((p) => [p.name, valuesOf(p.schema, doc).map(String)]));
        const headerParams = params.filter((p) => p.in === 'header' && !/^x-pveflow-/i.test(p.name));
        const headers: Record<string, fc.Arbitrary<string>> = Object.fromEntries(headerParams.map((p) => [p.name, stringsOf(p.schema)]));
        const bodySchema = op.requestBody?.content?.['application/json']?.schema;
        ops.push(
          fc
            .record({
              path: fc.record(pathParams),
              query: fc.record(query, { requiredKeys: params.filter((p) => p.in === 'query' && p.required).map((p) => p.name) }),
              headers: fc.record(headers, { requiredKeys: [] }),
              body: !bodySchema ? fc.constant(undefined) : op.requestBody.required ? valuesOf(bodySchema, doc) : fc.option(valuesOf(bodySchema, doc), { freq: 3, nil: undefined }),
              delivery: fc.stringMatching(/^[A-Za-z0-9._:-]{8,40}$/),
            })
            .map(({ path, query, headers: h, body, delivery }) => {
              const filled = template.replace(/\{(\w+)\}/g, (_m, name: string) => encodeURIComponent(String((path as Record<string, string>)[name])));
              const qs = new URLSearchParams(query as Record<string, string>).toString();
              const text = body === undefined ? undefined : JSON.stringify(body);
              const signed: Record<string, string> = /^\/api\/hooks\//.test(template) ? { 'x-pveflow-delivery': delivery, 'x-pveflow-signature': signWebhook(SECRET, delivery, text ?? '') } : {};
              const generated: Generated = {
                method: method.toUpperCase(),
                template,
                path: `${filled}${qs ? `?${qs}` : ''}`,
                headers: {
                  ...(op.security?.length ? { authorization: `Bearer ${operator.key}` } : {}),
                  ...(text === undefined ? {} : { 'content-type': 'application/json' }),
                  ...(h as Record<string, string>),
                  ...signed,
                },
                ...(text === undefined ? {} : { body: text }),
                bodyValid: true,
              };
              return generated;
            }),
        );
      }
    }
    return fc.oneof(...ops);
  };

  test(`${RUNS} requests generated from the document: every answer documented, no 500, refusals only by documented rules`, async () => {
    const statuses = new Map<string, number>();
    // A rule the document does not name (where it describes a field) is an unstated check too.
    const text = JSON.stringify(doc);
    const stated = (rule: string) => /^[a-z-]+$/.test(rule) && new RegExp(`(?<![a-z-])${rule}(?![a-z-])`).test(text);
    await fc.assert(
      fc.asyncProperty(requests(), async (g) => {
        const abort = new AbortController();
        const timer = setTimeout(() => abort.abort(), 20_000);
        try {
          const res = await fetch(`${base}${g.path}`, { method: g.method, headers: g.headers, body: g.body, signal: abort.signal });
          // A log stream stays open: its head is the answer.
          const isStream = res.headers.get('content-type')?.startsWith('text/event-stream');
          const text = isStream ? '' : await res.text();
          const body = text && res.headers.get('content-type')?.includes('json') ? JSON.parse(text) : text;
          const at = `${g.method} ${g.path} ${g.body ?? ''} → ${res.status} ${text.slice(0, 400)}`;
          statuses.set(`${g.method} ${g.template} ${res.status}`, (statuses.get(`${g.method} ${g.template} ${res.status}`) ?? 0) + 1);
          assert.notEqual(res.status, 500, at);
          checker.check(g.method, g.path, { status: res.status, headers: res.headers, body });
          if (res.status === 400) {
            // Everything was generated valid under the document: a refusal must name a rule the document states.
            const issues = (body as { issues: Array<{ field: string; rule?: string }> }).issues;
            const documented = issues.every((i) => (i.rule !== undefined && stated(i.rule)) || i.field === 'page_token');
            assert.ok(documented, `a request valid under the document was refused for an unstated reason: ${at}`);
          }
        } finally {
          clearTimeout(timer);
          abort.abort();
        }
      }),
      { numRuns: RUNS },
    );
    // The run reached far enough: more than refusals.
    const ok = [...statuses.entries()].filter(([k]) => / 2\d\d$/.test(k)).reduce((n, [, v]) => n + v, 0);
    assert.ok(ok > RUNS / 10, `too few 2xx answers: ${JSON.stringify(Object.fromEntries(statuses))}`);
  });
});
