/**
 * How long simulated work takes. Real values come from the reference (§4, §5); tests and benchmarks shrink them.
 * Every wait in the simulator derives from one of these, so a test never sleeps longer than its own timing says.
 */
export interface PveTiming {
  linkedCloneMs: number;
  fullCloneMsPerGiB: number;
  /** Config update (PUT inline, POST as a `qmconfig` task). */
  configMs: number;
  startMs: number;
  stopMs: number;
  shutdownMs: number;
  destroyMs: number;
  /** From the end of the start task until the guest agent answers (cloud-init has run). */
  agentStartMs: number;
  /** From the agent coming up until the guest has a DHCP IPv4 lease. */
  ipv4AfterAgentMs: number;
  /** pvestatd push interval: how long `/cluster/resources` shows stale status for a VM. */
  resourcesLagMs: number;
  /** The delay before a 401 answer. */
  authFailureDelayMs: number;
  /**
   * The config flock timeout of workers (10 s in PVE). The clone's 1 s source/target flocks are a tenth of it, so
   * lowering this keeps lock-contention tests fast while keeping the real ratio.
   */
  flockTimeoutMs: number;
  /** Disk allocation of a create (per new disk). */
  createMs: number;
  /**
   * How long one volume allocation holds its storage's lock (`lvcreate` and friends). Waiters give up after
   * `flockTimeoutMs`, as PVE does after 10 s; unset, it is a fiftieth of that (200 ms of 10 s), so that some fifty
   * allocations queued on one storage at once are what makes the last one time out, at any scale.
   */
  storageAllocMs: number;
  resizeMs: number;
  /** A migration: offline copies local disks, online also moves RAM; one figure is enough for the state machine. */
  migrateMs: number;
  snapshotMs: number;
  /** The HA stack's reaction after an `hastart`/`hastop` task has already ended OK. */
  haActionMs: number;
  /** pveproxy's proxy/pvedaemon inactivity timeout (30 s): a slower synchronous call comes back as 596. */
  proxyTimeoutMs: number;
  /** How long `/cluster/resources` keeps a dead node's last RRD data (5 min) before showing `unknown`. */
  rrdExpiryMs: number;
}

export const realisticTiming: PveTiming = {
  linkedCloneMs: 1500,
  fullCloneMsPerGiB: 4000,
  configMs: 300,
  startMs: 2000,
  stopMs: 1000,
  shutdownMs: 4000,
  destroyMs: 1500,
  agentStartMs: 10_000,
  ipv4AfterAgentMs: 3000,
  resourcesLagMs: 10_000,
  authFailureDelayMs: 3000,
  flockTimeoutMs: 10_000,
  createMs: 1000,
  storageAllocMs: 200,
  resizeMs: 500,
  migrateMs: 5000,
  snapshotMs: 1000,
  haActionMs: 2000,
  proxyTimeoutMs: 30_000,
  rrdExpiryMs: 300_000,
};

export const zeroTiming: PveTiming = {
  linkedCloneMs: 0,
  fullCloneMsPerGiB: 0,
  configMs: 0,
  startMs: 0,
  stopMs: 0,
  shutdownMs: 0,
  destroyMs: 0,
  agentStartMs: 0,
  ipv4AfterAgentMs: 0,
  resourcesLagMs: 0,
  authFailureDelayMs: 0,
  flockTimeoutMs: 0,
  createMs: 0,
  storageAllocMs: 0,
  resizeMs: 0,
  migrateMs: 0,
  snapshotMs: 0,
  haActionMs: 0,
  proxyTimeoutMs: 0,
  rrdExpiryMs: 0,
};

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}
