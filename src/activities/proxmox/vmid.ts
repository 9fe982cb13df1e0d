import { PveApiError } from '../../clients/pve';
import type { ActivityDeps } from '../deps';
import { pveFailure } from './failures';

export interface ReserveVmidInput {
  serial: string;
  /** VMIDs a previous try found taken: skip them. */
  exclude?: number[];
}

/**
 * Picks a free VMID: a random start inside the configured range, then `nextid?vmid=` probes upwards. Proxmox has no
 * reservation (proxmox-behaviour.md §4.5), so this only lowers the odds of a collision; the clone step detects a
 * collision and the build asks again, never trusting a bare `nextid`.
 */
export function vmidActivities({ pve, settings }: ActivityDeps) {
  return {
    async reserveVmid({ serial, exclude = [] }: ReserveVmidInput): Promise<number> {
      const { min, max } = settings.vmidRange;
      const span = max - min + 1;
      const start = min + Math.floor(Math.random() * span);
      const probes = Math.min(span, 64);
      for (let i = 0; i < probes; i++) {
        const candidate = min + ((start - min + i) % span);
        if (exclude.includes(candidate)) continue;
        try {
          return await pve.nextId(candidate);
        } catch (err) {
          if (err instanceof PveApiError && err.errorClass === 'alreadyExists') continue;
          throw pveFailure(err, { serial }, 'reserving a VMID');
        }
      }
      throw pveFailure(new Error(`no free VMID found in PVE_VMID_RANGE ${min}-${max} after ${probes} probes; widen the range or remove unused VMs`), { serial }, 'reserving a VMID');
    },
  };
}
