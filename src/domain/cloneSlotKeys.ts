import type { SlotAsk } from './cloneSlotGrant';

/**
 * The clone slot keys of a clone: what the clone-slots coordinator (src/workflows/cloneSlots.ts) counts per node and
 * per storage. The build asks for them before it clones and releases them when the clone has ended.
 */
export interface CloneLimits {
  /** Clones at once per node; 0: unlimited. */
  perNode: number;
  /** Clones at once per storage (per node for local storage, cluster-wide for shared storage); 0: unlimited. */
  perStorage: number;
}

export interface CloneLoad {
  node: string;
  /** The storages the clone allocates volumes on, and whether each is shared. */
  storages: Array<{ id: string; shared: boolean }>;
}

/** The slot keys a clone takes and their limits; no keys when no limit is configured. */
export function cloneSlotKeys(load: CloneLoad, limits: CloneLimits): Pick<SlotAsk, 'keys' | 'limits'> {
  const keyed: Array<[string, number]> = [];
  if (limits.perNode > 0) keyed.push([`node/${load.node}`, limits.perNode]);
  if (limits.perStorage > 0) {
    for (const s of load.storages) keyed.push([s.shared ? `storage/${s.id}` : `storage/${s.id}@${load.node}`, limits.perStorage]);
  }
  const unique = new Map(keyed);
  return { keys: [...unique.keys()], limits: Object.fromEntries(unique) };
}
