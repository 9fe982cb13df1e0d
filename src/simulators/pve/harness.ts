import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, fetch } from 'undici';
import { simulatorTls } from '../tls';
import { createPveSimulator, defaultClusterSeed, ROOT_TOKEN_ID, type GuestBoot, type PveSimulator, type PveTiming } from './index';
import type { ClusterSeed } from './seed';

/**
 * A running simulator plus a raw HTTPS caller that shows what a client would see (status, reason phrase, body):
 * for the simulator's own tests and the benchmark. pveflow's code talks to the simulator through its real client.
 */
export const HARNESS_TOKEN = 'pveflow@pve!automation';
export const HARNESS_SECRET = '6a1c0c47-5b6e-4a53-9d7f-1c2b3d4e5f60';
export const HARNESS_ROOT_SECRET = 'root-secret-for-tests';

export interface Reply {
  status: number;
  statusText: string;
  body: { data?: unknown; message?: string; errors?: Record<string, string>; total?: number; error?: string } | undefined;
  raw: string;
}

export interface CallOptions {
  form?: Record<string, string>;
  /** A form body exactly as given (to send `+` unencoded, for instance). */
  rawForm?: string;
  json?: unknown;
  as?: 'pool' | 'root' | 'none';
  auth?: string;
  /** Leave the body as text (`raw`) — for measuring the server, not the client's JSON parser. */
  noParse?: boolean;
}

export interface PveHarness {
  sim: PveSimulator;
  url: string;
  origin: string;
  boots: GuestBoot[];
  dir: string;
  call(method: string, path: string, opts?: CallOptions): Promise<Reply>;
  /** A call to the control endpoint (`/_sim/...`) with the given bearer token. */
  control(method: string, path: string, token: string | undefined, json?: unknown): Promise<Reply>;
  /** Polls the task to `stopped` and returns its status object. */
  waitTask(upid: string, as?: 'pool' | 'root'): Promise<{ exitstatus: string; [k: string]: unknown }>;
  /** POST/PUT/DELETE that must answer 200 with a UPID, then waits for the task. */
  task(method: string, path: string, opts?: CallOptions): Promise<{ upid: string; exitstatus: string }>;
  close(): Promise<void>;
}

export async function startPveHarness(
  opts: {
    timing?: Partial<PveTiming>;
    seed?: ClusterSeed;
    controlToken?: string;
  } = {},
): Promise<PveHarness> {
  const dir = mkdtempSync(join(tmpdir(), 'pve-sim-'));
  const tls = await simulatorTls(dir);
  const boots: GuestBoot[] = [];
  const sim = createPveSimulator({
    seed: opts.seed ?? defaultClusterSeed({ tokenSecret: HARNESS_SECRET, rootTokenSecret: HARNESS_ROOT_SECRET }),
    timing: opts.timing,
    snippetsDir: (node, storage) => join(dir, node, storage),
    storageDir: (storage, node) => join(dir, 'storage', storage, node ?? 'shared'),
    onGuestBoot: (b) => boots.push(b),
    ...(opts.controlToken ? { control: { token: opts.controlToken } } : {}),
  });
  const server = await sim.listen({ tls });
  const origin = new URL(server.url).origin;
  const agent = new Agent({ connect: { ca: tls.ca } });

  const send = async (url: string, method: string, headers: Record<string, string>, body?: string, parse = true): Promise<Reply> => {
    const res = await fetch(url, { method, headers, body, dispatcher: agent, signal: AbortSignal.timeout(20_000) });
    const raw = await res.text();
    let parsed: Reply['body'];
    try {
      parsed = raw && parse ? (JSON.parse(raw) as Reply['body']) : undefined;
    } catch {
      parsed = undefined;
    }
    return { status: res.status, statusText: res.statusText, body: parsed, raw };
  };

  const call: PveHarness['call'] = (method, path, o = {}) => {
    const headers: Record<string, string> = {};
    const as = o.as ?? 'pool';
    if (o.auth !== undefined) headers.authorization = o.auth;
    else if (as === 'pool') headers.authorization = `PVEAPIToken=${HARNESS_TOKEN}=${HARNESS_SECRET}`;
    else if (as === 'root') headers.authorization = `PVEAPIToken=${ROOT_TOKEN_ID}=${HARNESS_ROOT_SECRET}`;
    let body: string | undefined;
    if (o.form || o.rawForm !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = o.rawForm ?? new URLSearchParams(o.form).toString();
    } else if (o.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(o.json);
    }
    return send(server.url + path, method, headers, body, !o.noParse);
  };

  const control: PveHarness['control'] = (method, path, token, json) =>
    send(
      origin + path,
      method,
      {
        ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}),
        ...(json !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      json !== undefined ? JSON.stringify(json) : undefined,
    );

  const waitTask: PveHarness['waitTask'] = async (upid, as = 'pool') => {
    const node = upid.split(':')[1]!;
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const r = await call('GET', `/nodes/${node}/tasks/${encodeURIComponent(upid)}/status`, { as });
      if (r.status !== 200) throw new Error(`task status ${upid}: ${r.status} ${r.statusText}`);
      const data = r.body!.data as { status: string; exitstatus: string };
      if (data.status === 'stopped') return data as { exitstatus: string };
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw new Error(`task ${upid} did not finish`);
  };

  const task: PveHarness['task'] = async (method, path, o) => {
    const r = await call(method, path, o);
    if (r.status !== 200 || typeof r.body?.data !== 'string') throw new Error(`${method} ${path}: ${r.status} ${r.statusText} ${r.raw}`);
    const upid = r.body.data;
    return { upid, exitstatus: (await waitTask(upid, o?.as === 'root' ? 'root' : 'pool')).exitstatus };
  };

  return {
    sim,
    url: server.url,
    origin,
    boots,
    dir,
    call,
    control,
    waitTask,
    task,
    close: async () => {
      await server.close();
      await agent.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
