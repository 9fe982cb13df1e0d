/**
 * Where a build goes when others choose at the same moment: each node's free capacity as the cluster reported it,
 * less what the builds placed there before (reservations) whose VMs the cluster does not count yet. Pure (no
 * Temporal, no Node APIs): the clone-slots coordinator decides with it, one ask after the other, so that a class
 * approved at once spreads as the nodes' free capacity allows instead of landing on the one "most free" node.
 */

/** A place the build may go, with the node's free capacity as the cluster reported it. */
export interface PlacementOffer {
  node: string;
  /** The node holding the template's local disks, when the VM is cloned there and then migrated to `node`. */
  cloneOn?: string;
  /**
   * The clone slot keys of a clone at this place, when they differ from place to place (an image with a template per
   * node clones on the chosen node): the coordinator then grants on these, not on the ask's `keys` (all places' keys).
   */
  keys?: string[];
  /** Free cores (or, without node metrics, minus the number of pool VMs there). */
  freeCpu: number;
  /** Free memory in bytes (0 without node metrics). */
  freeMem: number;
}

/** What one build takes of a node, in the offers' units. */
export interface PlacementNeed {
  cpu: number;
  mem: number;
}

export interface PlacementReservation extends PlacementNeed {
  holder: string;
  node: string;
  /** The VM the build made, once it has one: the reservation ends when the cluster counts that VM. */
  vmid?: number;
}

/**
 * The offer with the most free cpu, then memory, after the reservations of other builds on its node; offers whose
 * memory the reservations would exhaust come last (the cluster's figures are estimates: Proxmox has the last word).
 * Ties go to the node name, so the choice is deterministic.
 */
export function choosePlacementOffer(offers: readonly PlacementOffer[], need: PlacementNeed, reservations: readonly PlacementReservation[]): PlacementOffer | undefined {
  const left = (o: PlacementOffer) => {
    const on = reservations.filter((r) => r.node === o.node);
    return { cpu: o.freeCpu - on.reduce((sum, r) => sum + r.cpu, 0), mem: o.freeMem - on.reduce((sum, r) => sum + r.mem, 0) };
  };
  const ranked = offers.map((offer) => ({ offer, ...left(offer) }));
  ranked.sort((a, b) => Number(b.mem >= need.mem) - Number(a.mem >= need.mem) || b.cpu - a.cpu || b.mem - a.mem || a.offer.node.localeCompare(b.offer.node));
  return ranked[0]?.offer;
}

/** The reservations still to count: those whose VM the cluster does not yet show running (`running`: `node/vmid`). */
export function uncountedReservations<R extends PlacementReservation>(reservations: readonly R[], running: ReadonlySet<string>): R[] {
  return reservations.filter((r) => r.vmid === undefined || !running.has(`${r.node}/${r.vmid}`));
}
