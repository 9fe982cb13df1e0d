import type { PveTiming } from '../simulators/pve';
import { realisticTiming, zeroTiming } from '../simulators/pve';

/**
 * SIM_TIMING presets. `fast` keeps every state transition (tasks still run, the agent still comes up after the
 * start) but in milliseconds, so tests see the same behaviour as the realistic cluster, only sooner.
 */
export const simulatorTimings: Record<'realistic' | 'fast' | 'zero', Partial<PveTiming>> = {
  realistic: realisticTiming,
  fast: {
    linkedCloneMs: 60,
    fullCloneMsPerGiB: 20,
    configMs: 20,
    startMs: 40,
    stopMs: 20,
    shutdownMs: 40,
    destroyMs: 30,
    agentStartMs: 150,
    ipv4AfterAgentMs: 80,
    resourcesLagMs: 100,
    authFailureDelayMs: 50,
    flockTimeoutMs: 500,
  },
  zero: zeroTiming,
};
