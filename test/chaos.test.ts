import { describe, test } from 'node:test';
import { runChaosScenario } from './support/chaosScenario';

/**
 * Chaos: BUILDS builds (default 10, what CI runs; `npm run test:chaos` runs 50) submitted and approved over HTTP
 * while the worker is SIGKILLed several times, the API once and Temporal's dev server once (restarted on the same
 * SQLite file and port), at random moments. Every request ends Fulfilled with exactly its VM and NetBird objects;
 * after completion nothing of any request is left.
 */
const BUILDS = Number(process.env.PVEFLOW_CHAOS_BUILDS ?? 10);
const WORKER_KILLS = Number(process.env.PVEFLOW_CHAOS_KILLS ?? 3);

describe('chaos: worker, API and Temporal killed during many builds', () => {
  test(`${BUILDS} builds survive SIGKILLs of the worker (${WORKER_KILLS}×), the API and the dev server, with exactly one VM each`, async (t) => {
    const summary = await runChaosScenario({ builds: BUILDS, kills: [...Array<'worker'>(WORKER_KILLS).fill('worker'), 'api', 'temporal'] });
    t.diagnostic(summary);
  });
});
