/**
 * Who gets a clone slot next: the one grant rule of the clone-slots coordinator. Pure (no Temporal, no Node APIs),
 * so that the coordinator workflow uses it and a unit test checks it.
 *
 * Why slots at all: Proxmox serializes disk allocation on a storage lock and gives up after 10 s
 * (proxmox-behaviour.md §5, §6.1); a class of 30 identical VMs cloned at once fails on it.
 */

export interface SlotAsk {
  /** Who asks: the build's workflow id. */
  holder: string;
  /** What the clone loads: `node/<node>` and `storage/<sid>` (shared) or `storage/<sid>@<node>` (local). */
  keys: string[];
  /** The most clones at once per key; a key without a limit never waits. */
  limits: Record<string, number>;
}

/**
 * The asks of `waiting` (oldest first) that may take a slot now, given what `held` already takes. First come, first
 * served, but a clone whose node and storages have room never waits behind one whose do not: an ask that does not
 * fit is skipped, and what the asks granted before it take counts for the ones after.
 */
export function grantCloneSlots(held: ReadonlyArray<Pick<SlotAsk, 'keys'>>, waiting: readonly SlotAsk[]): SlotAsk[] {
  const inUse = new Map<string, number>();
  const take = (keys: string[]) => keys.forEach((key) => inUse.set(key, (inUse.get(key) ?? 0) + 1));
  held.forEach((h) => take(h.keys));
  const granted: SlotAsk[] = [];
  for (const ask of waiting) {
    if (ask.keys.every((key) => (inUse.get(key) ?? 0) < (ask.limits[key] ?? Number.POSITIVE_INFINITY))) {
      take(ask.keys);
      granted.push(ask);
    }
  }
  return granted;
}
