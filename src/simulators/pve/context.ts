import type { ClusterState } from './cluster';
import { paramError } from './errors';
import type { ConfigFlocks } from './flocks';
import type { Identity, PermissionEngine } from './permissions';
import type { PveApiSchema } from './schema';
import type { TaskRegistry } from './tasks';
import type { PveTiming } from './timing';
import type { Faults } from './faults';
import type { RealGuests } from './realGuests';
import type { StorageCapacity } from './capacity';
import type { StorageFiles } from './storageFiles';

/** What the simulator tells the world it boots guests into (see `PveSimulatorOptions`). */
export interface GuestBoot {
  node: string;
  vmid: number;
  name: string;
  userData?: string;
  /**
   * cloud-init sees a new instance at this boot (reference §4.13.1: the instance id is the SHA-1 of user-data and
   * network-config, or the meta-data snippet's): its per-instance modules (users, keys, `runcmd`: the NetBird
   * enrolment) run. A reboot with the same bytes runs none of them again.
   */
  newInstance: boolean;
}

/** Everything a handler may touch. */
export interface SimContext {
  cluster: ClusterState;
  tasks: TaskRegistry;
  flocks: ConfigFlocks;
  perms: PermissionEngine;
  timing: PveTiming;
  schema: PveApiSchema;
  faults: Faults;
  capacity: StorageCapacity;
  snippetsDir(node: string, storage: string): string;
  /** The files of file-based storages (`import/`, `template/iso/`, `template/cache/`). */
  storageFiles: StorageFiles;
  onGuestBoot?(boot: GuestBoot): void;
  /** Real-guest mode: VMs boot under QEMU (`realGuests/`); absent, guests are modelled. */
  realGuests?: RealGuests;
}

/** A request's parameters after validation: path, query and body merged, every value as PVE's handlers see it. */
export class Params {
  constructor(readonly values: Readonly<Record<string, string>>) {}

  has(name: string): boolean {
    return this.values[name] !== undefined;
  }

  str(name: string): string | undefined {
    return this.values[name];
  }

  req(name: string): string {
    const v = this.values[name];
    if (v === undefined) throw paramError({ [name]: 'property is missing and it is not optional' });
    return v;
  }

  int(name: string): number | undefined {
    const v = this.values[name];
    return v === undefined ? undefined : Number(v);
  }

  bool(name: string): boolean | undefined {
    const v = this.values[name];
    return v === undefined ? undefined : v === '1';
  }
}

export interface ApiRequest {
  identity: Identity;
  params: Params;
}

/** A result that carries siblings of `data` in the envelope (e.g. `total` of a task log). */
export class Envelope {
  constructor(
    readonly data: unknown,
    readonly siblings: Record<string, unknown>,
  ) {}
}

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  /** The path template exactly as the API schema names it, e.g. `/nodes/{node}/qemu/{vmid}/config`. */
  path: string;
  /** Runs before validation and before the node is contacted (PVE checks permissions on the receiving node). */
  permission?(req: ApiRequest, sim: SimContext): void;
  handle(req: ApiRequest, sim: SimContext): unknown;
}

/** Options only `root@pam` itself (not its tokens) may use. */
export function assertRootOnly(req: ApiRequest, ...names: string[]): void {
  if (req.identity.userid === 'root@pam' && !req.identity.tokenName) return;
  for (const name of names) {
    if (req.params.has(name)) throw paramError({ [name]: 'Only root may use this option.' });
  }
}
