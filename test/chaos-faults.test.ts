import { describe, test } from 'node:test';
import { runChaosScenario } from './support/chaosScenario';

/**
 * Chaos with a hostile cluster: the same run as chaos.test.ts, with worker kills only, while a fifth of the clones,
 * configurations and starts meet a VM lock timeout and NetBird's API rate limiter answers 429 beyond its budget.
 */
const BUILDS = Number(process.env.PVEFLOW_CHAOS_BUILDS ?? 10);
const WORKER_KILLS = Number(process.env.PVEFLOW_CHAOS_KILLS ?? 3);

describe('chaos: lock timeouts and NetBird rate limiting while the worker is killed', () => {
  test(`${BUILDS} builds with 20 % lock timeouts and a NetBird 429 limiter survive ${WORKER_KILLS} worker SIGKILLs`, async (t) => {
    const summary = await runChaosScenario({
      builds: BUILDS,
      kills: Array<'worker'>(WORKER_KILLS).fill('worker'),
      lockTimeoutShare: 0.2,
      netbirdRateLimit: { requestsPerSecond: 10, burst: 20 },
    });
    t.diagnostic(summary);
  });
});
