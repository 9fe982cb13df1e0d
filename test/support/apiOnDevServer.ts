import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker, type WorkflowBundle } from '@temporalio/worker';
import { createApp } from '../../src/api/app';
import { ApiKeyStore, generateApiKey, type ApiKeyEntry } from '../../src/api/auth/apiKeys';
import { searchAttributeDefinitions } from '../../src/contracts/searchAttributes';
import { defaultRequestPolicy } from '../../src/domain/requestPolicyRules';
import type { RequestChoiceSettings } from '../../src/requestChoices';
import { requireTemporalBinary } from '../../src/temporal/binaries';
import { ResponseChecker, type OpenApiDocument } from './openapiResponses';

/** An answer as `call` returns it: JSON bodies parsed, already checked against the OpenAPI document. */
export interface CheckedAnswer {
  status: number;
  headers: Headers;
  /** The API's JSON (or its text), read field by field by the tests. */
  body: any;
}

/**
 * A requester of Acme Corp, one of Globex and an operator, each with a fresh key: whom these tests call as (two orgs,
 * so that what one org may not see is seen to be hidden).
 */
export function twoOrgsAndOperator() {
  const key = <E extends ApiKeyEntry>(entry: E) => ({ ...entry, key: generateApiKey() });
  return {
    acme: key({ id: 'rita', role: 'requester' as const, org: 'Acme Corp', email: 'rita@acme.example' }),
    globex: key({ id: 'gus', role: 'requester' as const, org: 'Globex', email: 'gus@globex.example' }),
    operator: key({ id: 'ops', role: 'operator' as const }),
  };
}

/** pveflow's API in process on a real Temporal dev server, with a worker of the test's own workflows. */
export interface ApiOnDevServer<K extends string> {
  env: TestWorkflowEnvironment;
  /** http://127.0.0.1:<port> */
  base: string;
  /** The document the API serves: every answer `call` returns has been checked against it. */
  checker: ResponseChecker;
  /** A call as the key named `who`; the answer is checked against the OpenAPI document before it is returned. */
  call(who: K, method: string, path: string, body?: unknown): Promise<CheckedAnswer>;
  /** Stops what started (safe after a failed start, and twice). */
  stop(): Promise<void>;
}

/**
 * The set-up the API's intake and catalogue tests share: a Temporal dev server with pveflow's search attributes, a
 * worker on `taskQueue` running `workflowBundle` (stand-ins, or the real workflows a test is about; or none), and the API
 * listening on a free loopback port with `keys`, `choices` and the default policy.
 */
export async function startApiOnDevServer<K extends string>(opts: {
  taskQueue: string;
  keys: Record<K, ApiKeyEntry & { key: string }>;
  choices: RequestChoiceSettings;
  /** The worker's workflows; absent: no worker (the test runs its own on `taskQueue`). */
  workflowBundle?: WorkflowBundle;
}): Promise<ApiOnDevServer<K>> {
  const { taskQueue, keys, choices, workflowBundle } = opts;
  const stops: Array<() => Promise<void>> = [];
  const stop = async () => {
    // Last started, first stopped: the server, then the worker, then the dev server.
    for (const s of stops.splice(0).reverse()) await s();
  };
  try {
    const env = await TestWorkflowEnvironment.createLocal({
      server: { executable: { type: 'existing-path', path: requireTemporalBinary('temporal') }, searchAttributes: searchAttributeDefinitions },
    });
    stops.push(() => env.teardown());
    if (workflowBundle) {
      const worker = await Worker.create({ connection: env.nativeConnection, namespace: 'default', taskQueue, workflowBundle });
      const running = worker.run();
      stops.push(async () => {
        worker.shutdown();
        await running;
      });
    }
    const app = createApp({ client: env.client, taskQueue, policy: defaultRequestPolicy, apiKeys: new ApiKeyStore(Object.values<ApiKeyEntry>(keys)), webhookSecret: 'whsec-test', choices });
    const server = await new Promise<Server>((ok, fail) => {
      const s = app.listen(0, '127.0.0.1', () => ok(s));
      s.once('error', fail);
    });
    stops.push(
      () =>
        new Promise<void>((ok) => {
          server.close(() => ok());
          server.closeAllConnections();
        }),
    );
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const checker = new ResponseChecker((await (await fetch(`${base}/api/openapi.json`)).json()) as OpenApiDocument);
    const call = async (who: K, method: string, path: string, body?: unknown): Promise<CheckedAnswer> => {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: { authorization: `Bearer ${keys[who].key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(30_000),
      });
      const text = await res.text();
      const answer = { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : text };
      checker.check(method, path, answer);
      return answer;
    };
    return { env, base, checker, call, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
