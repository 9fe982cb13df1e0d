import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, cpus, totalmem } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { generateApiKey } from '../src/api/auth/apiKeys';
import { startEmbeddedStack, type EmbeddedStack } from '../src/embedded/stack';
import { freePort } from '../test/support/ports';
import { validRequestBody } from '../test/support/requests';

/**
 * What the benches of the whole system share: the embedded default (dev server on its SQLite file, simulated
 * world, worker, API) started in this process on free ports under a temporary data directory, an operator key, and
 * the request lifecycle driven through the HTTP API exactly as a user would.
 */
export interface BenchStack {
  stack: EmbeddedStack;
  /** One API call as the operator; throws with the answer on an unexpected status. */
  api(method: string, path: string, body?: unknown, expect?: number): Promise<any>;
  operatorKey: string;
  stop(): Promise<void>;
}

export async function startBenchStack(simTiming: 'zero' | 'fast' | 'realistic', extraEnv: Record<string, string> = {}): Promise<BenchStack> {
  const dataDir = mkdtempSync(join(tmpdir(), 'pveflow-bench-'));
  const operatorKey = generateApiKey();
  const stack = await startEmbeddedStack({
    env: {
      PATH: process.env.PATH,
      DATA_DIR: dataDir,
      TEMPORAL_PORT: String(await freePort()),
      TEMPORAL_UI_PORT: String(await freePort()),
      API_PORT: '0',
      SIM_PVE_PORT: '0',
      SIM_NETBIRD_PORT: '0',
      SIM_TIMING: simTiming,
      // The periodic clusterSync would add its own calls and events to what a build is measured to make.
      SYNC_INTERVAL_S: '86400',
      API_KEYS: JSON.stringify({ keys: [{ id: 'bench', role: 'operator', key: operatorKey }] }),
      // One key drives every bench's load (bench:api sends 200 POSTs a second): the per-key write bound is off.
      API_WRITES_PER_MINUTE: '0',
      ...tuningFromEnv(),
      ...extraEnv,
    },
  });
  const api = async (method: string, path: string, body?: unknown, expect?: number) => {
    const res = await fetch(`${stack.apiUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${operatorKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(60_000),
    });
    const text = await res.text();
    if (expect !== undefined && res.status !== expect) throw new Error(`${method} ${path}: ${res.status} ${text.slice(0, 300)}`);
    return text ? JSON.parse(text) : undefined;
  };
  return {
    stack,
    api,
    operatorKey,
    async stop() {
      await stack.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** The settings a bench run may vary from its command line (e.g. `PVE_CLONE_LIMIT_PER_STORAGE=0 npm run bench:throughput`). */
const TUNABLE = ['PVE_CLONE_LIMIT_PER_NODE', 'PVE_CLONE_LIMIT_PER_STORAGE', 'API_MAX_STARTS_IN_FLIGHT'] as const;

function tuningFromEnv(): Record<string, string> {
  return Object.fromEntries(TUNABLE.flatMap((k) => (process.env[k] === undefined ? [] : [[k, process.env[k]!]])));
}

/** A request whose period started a minute ago: approving it builds at once. */
export function buildNowBody(i: number): Record<string, unknown> {
  const now = Date.now();
  return validRequestBody({ name: `bench-${i}`, cores: 1, memory_mib: 1024, period: { start: new Date(now - 60_000).toISOString(), end: new Date(now + 7 * 24 * 3600_000).toISOString() } });
}

/** Runs `fn` over `items` with at most `limit` at a time. */
export async function pool<T, R>(items: T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

/** Waits until `count()` reaches `n`, checking every `everyMs`; fails after `timeoutMs`. */
export async function waitForCount(what: string, n: number, count: () => Promise<number>, timeoutMs: number, everyMs = 250): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const c = await count();
    if (c >= n) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${c} of ${n}`);
    await sleep(everyMs);
  }
}

export async function countWorkflows(stack: EmbeddedStack, query: string): Promise<number> {
  return (await stack.client.workflow.count(query)).count;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** The machine line every bench prints: results on a shared 2-core box mean little without the load next to them. */
export function machineLine(): string {
  const [l1, l5] = loadavg();
  return `machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}, load avg ${l1!.toFixed(2)} / ${l5!.toFixed(2)} (1/5 min) at ${new Date().toISOString()}`;
}

/**
 * CPU seconds (user + system) used so far by this process and by each kind of its child processes (by command
 * name, e.g. `temporal` for the dev server), read from /proc: where a bench's CPU goes on a box with two cores.
 * Empty children on systems without /proc.
 */
export function cpuSeconds(): { self: number; children: Record<string, number>; threads: Record<string, number> } {
  const usage = process.cpuUsage();
  const children: Record<string, number> = {};
  const threads: Record<string, number> = {};
  const tick = 100; // USER_HZ on Linux
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return { self: (usage.user + usage.system) / 1e6, children, threads };
  }
  // This process by thread: `main`; `node` for Node's worker threads (the workflow thread, and tsx's idle loader);
  // `tokio-runtime-w` for the SDK's Rust core; libuv's pool.
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const name = tid === String(process.pid) ? 'main' : stat.slice(stat.indexOf('(') + 1, close);
      const fields = stat.slice(close + 2).split(' ');
      threads[name] = (threads[name] ?? 0) + (Number(fields[11]) + Number(fields[12])) / tick;
    } catch {
      // gone meanwhile
    }
  }
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const name = stat.slice(stat.indexOf('(') + 1, close);
      const fields = stat.slice(close + 2).split(' ');
      if (Number(fields[1]) !== process.pid) continue; // ppid
      children[name] = (children[name] ?? 0) + (Number(fields[11]) + Number(fields[12])) / tick; // utime + stime
    } catch {
      // gone meanwhile
    }
  }
  return { self: (usage.user + usage.system) / 1e6, children, threads };
}

export type CpuReading = ReturnType<typeof cpuSeconds>;

/** CPU milliseconds this process and the dev server spent between two readings of `cpuSeconds()`. */
export function cpuMsBetween(before: CpuReading, after: CpuReading): { selfMs: number; devServerMs: number } {
  return {
    selfMs: (after.self - before.self) * 1000,
    devServerMs: ((after.children['temporal'] ?? 0) - (before.children['temporal'] ?? 0)) * 1000,
  };
}

/**
 * Returns once the dev server has used under 3 % of a core for two seconds in a row (idle, it uses about 1 %): the
 * tasks still trailing behind a bench's last call are then done, and counted by a CPU reading taken after this.
 */
export async function untilDevServerQuiet(): Promise<void> {
  const devServerS = () => cpuSeconds().children['temporal'] ?? 0;
  for (let quiet = 0, last = devServerS(); quiet < 2;) {
    await sleep(1_000);
    const now = devServerS();
    quiet = now - last < 0.03 ? quiet + 1 : 0;
    last = now;
  }
}

/**
 * A bench's main: a fresh stack, the bench's own work adding its figures, the stack stopped, then the figures printed
 * last (the stack's shutdown logs would otherwise bury them). A failure prints the error and exits 1.
 */
export function runBench(start: () => Promise<BenchStack>, bench: (b: BenchStack, figures: string[]) => Promise<void>): void {
  void (async () => {
    const figures: string[] = [];
    const b = await start();
    try {
      await bench(b, figures);
    } finally {
      await b.stop();
    }
    console.log(figures.join('\n'));
  })().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
