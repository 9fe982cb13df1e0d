import type { BenchStack } from './embeddedBench';
import { buildNowBody, countWorkflows, pool, waitForCount } from './embeddedBench';

/** What the simulators had counted (calls per `METHOD route`) at one moment. */
export interface CallSnapshot {
  pve: Record<string, number>;
  netbird: Record<string, number>;
}

export interface LifecycleRun {
  serials: string[];
  /** Before the approvals, once every request is fulfilled, once every request is completed. */
  calls: { submitted: CallSnapshot; fulfilled: CallSnapshot; completed: CallSnapshot };
}

/**
 * `n` whole request lifecycles through the API, in phases so that each phase's calls can be told apart: submit all,
 * approve all and wait until every one is Fulfilled, complete all and wait until every one is Completed.
 */
export async function runLifecycles(b: BenchStack, n: number, concurrency = 8): Promise<LifecycleRun> {
  const world = b.stack.world;
  if (!world) throw new Error('the bench needs the simulated world (no PVE_ENDPOINT / NETBIRD_API_URL)');
  const snapshot = (): CallSnapshot => ({ pve: world.pve.callCounts(), netbird: world.netbird.callCounts() });
  const serials = await pool(
    Array.from({ length: n }, (_, i) => i),
    concurrency,
    async (i) => (await b.api('POST', '/api/device_requests', buildNowBody(i), 201)).serial as string,
  );
  const submitted = snapshot();
  await pool(serials, concurrency, (s) => b.api('POST', `/api/device_requests/${s}/approve`, {}, 200));
  const mine = `WorkflowType = 'vmRequest' AND Serial IN (${serials.map((s) => `'${s}'`).join(', ')})`;
  await waitForCount(
    `${n} requests fulfilled`,
    n,
    async () => {
      const failed = await countWorkflows(b.stack, `${mine} AND RequestStatus = 'Failed'`);
      if (failed) throw new Error(`${failed} build(s) failed`);
      return countWorkflows(b.stack, `${mine} AND RequestStatus = 'Fulfilled'`);
    },
    10 * 60_000,
  );
  const fulfilled = snapshot();
  await pool(serials, concurrency, (s) => b.api('POST', `/api/device_requests/${s}/complete`, {}, 200));
  await waitForCount(`${n} requests completed`, n, () => countWorkflows(b.stack, `${mine} AND ExecutionStatus = 'Completed'`), 10 * 60_000);
  const completed = snapshot();
  return { serials, calls: { submitted, fulfilled, completed } };
}

/** Calls made between two snapshots, per route. */
export function callsBetween(from: Record<string, number>, to: Record<string, number>): Record<string, number> {
  return Object.fromEntries(
    Object.entries(to)
      .map(([k, v]) => [k, v - (from[k] ?? 0)])
      .filter(([, v]) => (v as number) > 0),
  );
}
