import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import fc from 'fast-check';
import { createApp } from '../src/api/app';
import { ApiKeyStore, generateApiKey } from '../src/api/auth/apiKeys';
import { signWebhook, WEBHOOK_TOLERANCE_S } from '../src/api/intake/webhookSignature';
import { defaultRequestPolicy } from '../src/domain/requestPolicyRules';
import { requireTemporalBinary } from '../src/temporal/binaries';
import { searchAttributeDefinitions } from '../src/contracts/searchAttributes';
import { ResponseChecker, type OpenApiDocument } from './support/openapiResponses';
import { validRequestBody } from './support/requests';

/**
 * Bad input, generated: 1,000 invalid bodies, paths, query strings, API keys and webhook signatures across every
 * endpoint that takes input. Each must get a 4xx that names the field at fault (or the authentication problem), never
 * a 5xx, and nothing may reach Temporal as a workflow start. A real dev server and no worker: a start that slipped
 * through would show in the spy and in visibility. Counterexamples print with fast-check's seed to replay them.
 */
const RUNS = 1_000;
const SECRET = `whsec-${generateApiKey()}`;
const ORG = 'Acme Corp';
const operator = { id: 'ops', role: 'operator' as const, key: generateApiKey() };
const requester = { id: 'rita', role: 'requester' as const, org: ORG, email: 'rita@acme.example', key: generateApiKey() };
const SERIAL = 'VM-ZZZZ9'; // well-formed; no such request

/** One generated call and what a correct answer must say. */
interface Case {
  what: string;
  method: 'GET' | 'POST';
  path: string;
  headers: Record<string, string>;
  body?: string;
  status: number;
  /** The field an issue must name (400), or what the problem's detail must mention (401/403). */
  names: { field: string } | { detail: RegExp };
}

const json = { 'content-type': 'application/json' };
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
const asOperator = { ...json, ...bearer(operator.key) };

// ── Values of the wrong kind ─────────────────────────────────────────────────────────────────────────────────────
const notString = fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.integer(), { maxLength: 2 }), fc.constant({}));
const notNumber = fc.oneof(fc.string({ maxLength: 8 }), fc.boolean(), fc.constant(null), fc.array(fc.integer(), { maxLength: 2 }), fc.constant({}));
const notArray = fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.boolean(), fc.constant(null), fc.constant({}));
const notBoolean = fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.constant(null), fc.constant([]));
const notObject = fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.boolean(), fc.constant(null), fc.constant([]));
const notEmail = fc.oneof(
  fc.string({ maxLength: 30 }).filter((s) => !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(s)),
  fc.constant('rita@'),
  fc.constant('@acme.example'),
  fc.constant('rita acme.example'),
);
const notDateTime = fc.oneof(
  fc.constantFrom('tomorrow', '2026-13-01T09:00:00Z', '2026-12-01', '2026-12-01T09:00:00', '2026-12-01 09:00:00Z', '', '2026-02-30T25:61:00Z', 'next friday'),
  fc.string({ maxLength: 20 }).filter((s) => Number.isNaN(Date.parse(s))),
);
const notSerial = fc.string({ minLength: 1, maxLength: 20 }).filter((s) => !/^VM-[0-9A-Z]{5}$/.test(s) && s !== '.' && s !== '..' && !s.includes('/') && !s.includes('\\') && !s.includes('?') && !s.includes('#'));
const unknownKey = fc.string({ minLength: 1, maxLength: 12 }).filter((k) => /^[a-zA-Z_][a-zA-Z0-9_]*$/.test(k));

const SUBMISSION_KEYS = ['name', 'client', 'requester', 'consultants', 'period', 'image', 'cores', 'memory_mib', 'disk_gib', 'full_clone', 'ssh_keys', 'network', 'cloud_init'];

/** A valid submission with exactly one thing wrong, and the field the answer must name. */
const badSubmission: fc.Arbitrary<{ body: Record<string, unknown>; field: string; what: string }> = fc.oneof(
  fc.record({ key: fc.constantFrom('name', 'client', 'requester'), v: notString }).map(({ key, v }) => ({ body: validRequestBody({ [key]: v }), field: key, what: `${key} not a string` })),
  fc.record({ key: fc.constantFrom('cores', 'memory_mib', 'disk_gib'), v: notNumber }).map(({ key, v }) => ({ body: validRequestBody({ [key]: v }), field: key, what: `${key} not a number` })),
  fc.record({ key: fc.constantFrom('consultants', 'ssh_keys'), v: notArray }).map(({ key, v }) => ({ body: validRequestBody({ [key]: v }), field: key, what: `${key} not an array` })),
  notBoolean.map((v) => ({ body: validRequestBody({ full_clone: v }), field: 'full_clone', what: 'full_clone not a boolean' })),
  notObject.map((v) => ({ body: validRequestBody({ period: v }), field: 'period', what: 'period not an object' })),
  fc.constantFrom('name', 'client', 'requester', 'consultants', 'period').map((key) => {
    const body: Record<string, unknown> = validRequestBody();
    delete body[key];
    return { body, field: key, what: `${key} missing` };
  }),
  fc.constantFrom('start', 'end').map((key) => {
    const period: Record<string, unknown> = { ...validRequestBody().period };
    delete period[key];
    return { body: validRequestBody({ period }), field: `period.${key}`, what: `period.${key} missing` };
  }),
  unknownKey.filter((k) => !SUBMISSION_KEYS.includes(k)).map((k) => ({ body: { ...validRequestBody(), [k]: 1 }, field: k, what: `unknown field ${k}` })),
  fc.record({ key: fc.constantFrom('start', 'end'), v: notDateTime }).map(({ key, v }) => ({
    body: validRequestBody({ period: { ...validRequestBody().period, [key]: v } }),
    field: `period.${key}`,
    what: `period.${key} not a date-time`,
  })),
  fc.integer({ min: 0, max: 400 * 24 }).map((hoursBefore) => {
    const end = new Date(Date.now() - hoursBefore * 3600_000).toISOString();
    return { body: validRequestBody({ period: { start: new Date(Date.now() + 3600_000).toISOString(), end } }), field: 'period.end', what: 'period ends before it starts' };
  }),
  notEmail.map((v) => ({ body: validRequestBody({ requester: v }), field: 'requester', what: 'requester not an email' })),
  notEmail.map((v) => ({ body: validRequestBody({ consultants: ['alice@consultancy.example', v] }), field: 'consultants.1', what: 'consultant not an email' })),
  fc.constant({ body: validRequestBody({ consultants: [] }), field: 'consultants', what: 'no consultant' }),
  fc.oneof(fc.integer({ max: 0 }), fc.integer({ min: 65 }), fc.double({ min: 1.01, max: 63.99, noInteger: true })).map((v) => ({ body: validRequestBody({ cores: v }), field: 'cores', what: `cores ${v}` })),
  fc.oneof(fc.integer({ max: 511 }), fc.integer({ min: 262_145 })).map((v) => ({ body: validRequestBody({ memory_mib: v }), field: 'memory_mib', what: `memory_mib ${v}` })),
  fc.constantFrom('', 'Kali', 'has space', '-kali', 'kali-', 'k_ali', 'a'.repeat(41)).map((v) => ({ body: validRequestBody({ name: v }), field: 'name', what: `name ${JSON.stringify(v)}` })),
);

const submissionCases: fc.Arbitrary<Case> = badSubmission.map(({ body, field, what }) => ({
  what: `submit: ${what}`,
  method: 'POST',
  path: '/api/device_requests',
  headers: asOperator,
  body: JSON.stringify(body),
  status: 400,
  names: { field },
}));

/** Text that is not JSON at all (express's parser refuses it before any route runs). */
const notJson = fc.oneof(
  fc.constantFrom('{', '{"name": }', "{'name': 'kali'}", 'name=kali', '[1,2', '{"a":1}}', 'undefined', 'NaN'),
  fc.string({ minLength: 1, maxLength: 40 }).filter((s) => {
    try {
      JSON.parse(s);
      return false;
    } catch {
      return true;
    }
  }),
);
const ACTIONS = ['approve', 'reject', 'cancel', 'rebuild', 'complete', 'extend'] as const;
const badJsonCases: fc.Arbitrary<Case> = fc
  .record({ text: notJson, target: fc.constantFrom('/api/device_requests', ...ACTIONS.map((a) => `/api/device_requests/${SERIAL}/${a}`)) })
  .map(({ text, target }) => ({ what: `bad JSON to ${target}`, method: 'POST', path: target, headers: asOperator, body: text, status: 400, names: { detail: /not valid JSON/ } }));

/** Action bodies with one thing wrong, on a well-formed serial (the body is refused before the request is looked up). */
const badActionBody: fc.Arbitrary<{ action: string; body: unknown; field: string }> = fc.oneof(
  fc.record({ action: fc.constantFrom('approve', 'cancel', 'rebuild', 'complete'), v: notString }).map(({ action, v }) => ({ action, body: { note: v }, field: 'note' })),
  fc.record({ action: fc.constantFrom('approve', 'cancel', 'rebuild', 'complete'), k: unknownKey.filter((k) => k !== 'note') }).map(({ action, k }) => ({ action, body: { [k]: 'x' }, field: k })),
  fc.constantFrom('approve', 'cancel', 'rebuild', 'complete', 'extend').map((action) => ({ action, body: { note: 'x'.repeat(2001), ...(action === 'extend' ? { new_end: '2030-01-01T00:00:00Z' } : {}) }, field: 'note' })),
  fc.oneof(fc.constant(undefined), fc.constant(''), notString).map((v) => ({ action: 'reject', body: v === undefined ? {} : { reason: v }, field: 'reason' })),
  fc.oneof(fc.constant(undefined), notDateTime, notString).map((v) => ({ action: 'extend', body: v === undefined ? {} : { new_end: v }, field: 'new_end' })),
  fc.record({ action: fc.constantFrom(...ACTIONS), v: fc.array(fc.integer(), { maxLength: 3 }) }).map(({ action, v }) => ({ action, body: v, field: '(body)' })),
);
const actionCases: fc.Arbitrary<Case> = badActionBody.map(({ action, body, field }) => ({
  what: `${action}: bad body ${JSON.stringify(body)?.slice(0, 60)}`,
  method: 'POST',
  path: `/api/device_requests/${SERIAL}/${action}`,
  headers: asOperator,
  body: JSON.stringify(body),
  status: 400,
  names: { field },
}));

/** Serials that are not serials, on every route that takes one (a valid body, so the serial is what is wrong). */
const badSerialCases: fc.Arbitrary<Case> = fc.record({ serial: notSerial, route: fc.constantFrom('read', 'logs', ...ACTIONS) }).map(({ serial, route }) => {
  const path = `/api/device_requests/${encodeURIComponent(serial)}${route === 'read' ? '' : `/${route}`}`;
  const post = route !== 'read' && route !== 'logs';
  const body = route === 'reject' ? { reason: 'no budget' } : route === 'extend' ? { new_end: '2030-01-01T00:00:00Z' } : {};
  return { what: `${route} with serial ${JSON.stringify(serial)}`, method: post ? 'POST' : 'GET', path, headers: asOperator, ...(post ? { body: JSON.stringify(body) } : {}), status: 400, names: { field: 'serial' } };
});

/** Filters of the list that are not filters. */
const badQueryCases: fc.Arbitrary<Case> = fc
  .oneof(
    notDateTime.filter((v) => v !== '').map((v) => ({ q: { from: v }, field: 'from' })),
    notDateTime.filter((v) => v !== '').map((v) => ({ q: { to: v }, field: 'to' })),
    fc
      .string({ maxLength: 10 })
      .filter((s) => !['Pending', 'Approved', 'Imaging', 'Provisioning', 'Configuring', 'Fulfilled', 'Failed', 'Rejected', 'Expired', 'Cancelled', 'Completing', 'Completed'].includes(s))
      .map((v) => ({ q: { status: v }, field: 'status' })),
    fc.oneof(fc.integer({ max: 0 }), fc.integer({ min: 101 }), fc.constantFrom('ten', '1.5')).map((v) => ({ q: { page_size: String(v) }, field: 'page_size' })),
    fc.constantFrom("x' OR 1=1", 'a b', 'tok"en', '$$$').map((v) => ({ q: { page_token: v }, field: 'page_token' })),
    notEmail.filter((v) => v !== '').map((v) => ({ q: { consultant: v }, field: 'consultant' })),
    unknownKey.filter((k) => !['org', 'status', 'consultant', 'from', 'to', 'page_size', 'page_token'].includes(k)).map((k) => ({ q: { [k]: '1' }, field: k })),
  )
  .map(({ q, field }) => ({
    what: `list with ${JSON.stringify(q)}`,
    method: 'GET',
    path: `/api/device_requests?${new URLSearchParams(q as Record<string, string>)}`,
    headers: asOperator,
    status: 400,
    names: { field },
  }));

/** Missing, malformed and unknown API keys on every authenticated route, with otherwise valid calls. */
const badAuthorization = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom('Bearer', 'Bearer ', `Basic ${Buffer.from('ops:secret').toString('base64')}`, `Token ${operator.key}`, `Bearer ${operator.key}x`, `Bearer ${operator.key.slice(0, -1)}`, `Bearer  ${operator.key} extra`),
  fc
    .string({ minLength: 1, maxLength: 60 })
    .filter((s) => /^[\x20-\x7e]+$/.test(s))
    .map((s) => `Bearer ${s}`),
  fc.string({ minLength: 1, maxLength: 60 }).filter((s) => /^[\x21-\x7e][\x20-\x7e]*$/.test(s)),
);
const authCases: fc.Arbitrary<Case> = fc.record({ authorization: badAuthorization, route: fc.constantFrom('submit', 'list', 'read', 'logs', 'templates', 'images', ...ACTIONS) }).map(({ authorization, route }) => {
  const target: Record<string, [Case['method'], string, unknown]> = {
    submit: ['POST', '/api/device_requests', validRequestBody()],
    list: ['GET', '/api/device_requests', undefined],
    read: ['GET', `/api/device_requests/${SERIAL}`, undefined],
    logs: ['GET', `/api/device_requests/${SERIAL}/logs`, undefined],
    templates: ['GET', '/api/templates', undefined],
    images: ['GET', '/api/images', undefined],
    ...Object.fromEntries(ACTIONS.map((a) => [a, ['POST', `/api/device_requests/${SERIAL}/${a}`, a === 'reject' ? { reason: 'x' } : a === 'extend' ? { new_end: '2030-01-01T00:00:00Z' } : {}]])),
  };
  const [method, path, body] = target[route]!;
  return {
    what: `${route} with authorization ${JSON.stringify(authorization)}`,
    method,
    path,
    headers: { ...json, ...(authorization === undefined ? {} : { authorization }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    status: 401,
    names: { detail: /Authorization: Bearer/ },
  };
});

/** A real key of a requester, acting outside its role or its org: refused, naming the key. */
const forbiddenCases: fc.Arbitrary<Case> = fc.oneof(
  fc.constantFrom('Globex', 'Initech', 'Umbrella').map((org) => ({
    what: `requester submits for ${org}`,
    method: 'POST' as const,
    path: '/api/device_requests',
    headers: { ...json, ...bearer(requester.key) },
    body: JSON.stringify(validRequestBody({ client: org })),
    status: 403,
    names: { detail: /key rita/ },
  })),
  fc.constantFrom('approve', 'reject', 'cancel', 'rebuild').map((a) => ({
    what: `requester ${a}s`,
    method: 'POST' as const,
    path: `/api/device_requests/${SERIAL}/${a}`,
    headers: { ...json, ...bearer(requester.key) },
    body: JSON.stringify(a === 'reject' ? { reason: 'x' } : {}),
    status: 403,
    names: { detail: /rita|requester/ },
  })),
);

/** The webhook intake: unsigned, badly signed, stale, or signed but wrong (delivery id, JSON, body). */
const validDelivery = fc.stringMatching(/^[A-Za-z0-9._:-]{8,40}$/);
type Signer = (delivery: string) => string | undefined;
const signedRight: (body: string) => Signer = (body) => (delivery) => signWebhook(SECRET, delivery, body);
const webhookCases: fc.Arbitrary<Case> = fc
  .oneof(
    fc
      .oneof(fc.constant(undefined), fc.constantFrom('sha256=', 'sha1=abc', `sha256=${'0'.repeat(64)}`, `t=abc,v1=${'0'.repeat(64)}`, 't=1,v1=', `v1=${'0'.repeat(64)}`), fc.string({ maxLength: 70 }))
      .map((signature) => ({
        what: `webhook with signature ${JSON.stringify(signature)}`,
        body: JSON.stringify(validRequestBody()),
        sign: (() => signature) as Signer,
        status: 401,
        names: { detail: /X-Pveflow-Signature|signature/ } as Case['names'],
      })),
    fc.record({ secret: fc.string({ minLength: 1, maxLength: 30 }).filter((s) => s !== SECRET), how: fc.constantFrom('tamper', 'secret', 'delivery') }).map(({ secret, how }) => {
      const body = JSON.stringify(validRequestBody());
      // Signed with the wrong secret, signed right and changed on the way, or a signature taken from another delivery.
      const sign: Signer = (delivery) => (how === 'secret' ? signWebhook(secret, delivery, body) : how === 'delivery' ? signWebhook(SECRET, `${delivery}-x`, body) : signWebhook(SECRET, delivery, body));
      return { what: `webhook: ${how}`, body: how === 'tamper' ? body.replace('kali', 'kalo') : body, sign, status: 401, names: { detail: /signature does not match/ } as Case['names'] };
    }),
    fc
      .integer({ min: WEBHOOK_TOLERANCE_S + 5, max: 400 * 24 * 3600 })
      .chain((age) => fc.constantFrom(-age, age))
      .map((offset) => {
        const body = JSON.stringify(validRequestBody());
        return { what: `webhook signed ${offset} s from now`, body, sign: ((d) => signWebhook(SECRET, d, body, Date.now() + offset * 1000)) as Signer, status: 401, names: { detail: /timestamp/ } as Case['names'] };
      }),
    fc.oneof(fc.constantFrom('short', 'has space in it', 'semi;colon-123', 'x'.repeat(129)), fc.constant(undefined)).map((delivery) => {
      const body = JSON.stringify(validRequestBody());
      return { what: `webhook with delivery ${JSON.stringify(delivery)}`, body, sign: signedRight(body), delivery, status: 400, names: { field: 'x-pveflow-delivery' } as Case['names'] };
    }),
    notJson.map((text) => ({ what: 'webhook with signed bad JSON', body: text, sign: signedRight(text), status: 400, names: { detail: /not valid JSON/ } as Case['names'] })),
    badSubmission.map(({ body, field, what }) => {
      const text = JSON.stringify(body);
      return { what: `webhook: ${what}`, body: text, sign: signedRight(text), status: 400, names: { field } as Case['names'] };
    }),
  )
  .chain((c) =>
    validDelivery.map((id): Case => {
      const delivery = 'delivery' in c ? c.delivery : id;
      const signature = c.sign(delivery ?? id);
      return {
        what: c.what,
        method: 'POST',
        path: '/api/hooks/device_requests',
        headers: { ...json, ...(signature === undefined ? {} : { 'x-pveflow-signature': signature }), ...(delivery === undefined ? {} : { 'x-pveflow-delivery': delivery }) },
        body: c.body,
        status: c.status,
        names: c.names,
      };
    }),
  );

const anyBadCall = fc.oneof(
  { arbitrary: submissionCases, weight: 4 },
  { arbitrary: webhookCases, weight: 2 },
  { arbitrary: actionCases, weight: 2 },
  { arbitrary: authCases, weight: 2 },
  { arbitrary: badSerialCases, weight: 1 },
  { arbitrary: badQueryCases, weight: 1 },
  { arbitrary: badJsonCases, weight: 1 },
  { arbitrary: forbiddenCases, weight: 1 },
);

describe('API bad input (property-based)', () => {
  let env: TestWorkflowEnvironment;
  let server: Server;
  let base: string;
  let starts = 0;
  let checker: ResponseChecker;

  before(async () => {
    env = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path: requireTemporalBinary('temporal') }, searchAttributes: searchAttributeDefinitions },
    });
    // Every workflow start the app could make goes through this client: count them (there is no worker to run one).
    const workflow = env.client.workflow;
    const start = workflow.start.bind(workflow);
    workflow.start = ((...args: Parameters<typeof start>) => {
      starts += 1;
      return start(...args);
    }) as typeof workflow.start;
    const app = createApp({
      client: env.client,
      taskQueue: 'api-fuzz-no-worker',
      policy: defaultRequestPolicy,
      apiKeys: new ApiKeyStore([operator, requester]),
      webhookSecret: SECRET,
      // A thousand writes from one key in seconds: the write bound is test/api-hardening's subject, not this one's.
      timings: { writesPerMinute: 0 },
    });
    server = await new Promise<Server>((ok) => {
      const s = app.listen(0, '127.0.0.1', () => ok(s));
    });
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    checker = new ResponseChecker((await (await fetch(`${base}/api/openapi.json`)).json()) as OpenApiDocument);
  });

  after(async () => {
    if (server)
      await new Promise<void>((ok) => {
        server.close(() => ok());
        server.closeAllConnections();
      });
    await env?.teardown();
  });

  test(`${RUNS} generated invalid calls: each a 4xx naming the field or the auth problem; no 5xx; nothing started`, async () => {
    const executionsBefore = await countExecutions(env);
    const seen = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(anyBadCall, async (c) => {
        const res = await fetch(`${base}${c.path}`, { method: c.method, headers: c.headers, body: c.body, signal: AbortSignal.timeout(10_000) });
        const text = await res.text();
        seen.set(res.status, (seen.get(res.status) ?? 0) + 1);
        const context = `${c.what}: ${c.method} ${c.path} → ${res.status} ${text.slice(0, 300)}`;
        assert.ok(res.status < 500, `server error on ${context}`);
        assert.equal(res.status, c.status, context);
        checker.check(c.method, c.path, { status: res.status, headers: res.headers, body: JSON.parse(text) });
        const answer = JSON.parse(text) as { error?: string; detail?: string; issues?: Array<{ field: string; reason: string }> };
        if ('field' in c.names) {
          const fields = (answer.issues ?? []).map((i) => i.field);
          assert.ok(fields.includes(c.names.field), `${context}: no issue names ${c.names.field}`);
          assert.ok(
            answer.issues!.every((i) => i.reason.length > 0),
            `${context}: an issue without a reason`,
          );
        } else {
          assert.match(answer.detail ?? '', c.names.detail, context);
        }
      }),
      { numRuns: RUNS },
    );
    assert.equal(starts, 0, 'a workflow start was attempted for invalid input');
    assert.equal(await countExecutions(env), executionsBefore, 'a workflow exists that invalid input started');
    assert.ok(
      [...seen.keys()].every((s) => s >= 400 && s < 500),
      JSON.stringify(Object.fromEntries(seen)),
    );
  });
});

async function countExecutions(env: TestWorkflowEnvironment): Promise<number> {
  return (await env.client.workflow.count()).count;
}
