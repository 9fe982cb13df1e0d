/**
 * The privileges pveflow's token needs, per ACL path, and why. The list is the seeds' (VM.Allocate, VM.Clone,
 * VM.Config.*, VM.PowerMgmt, VM.Monitor / VM.GuestAgent.*, Datastore.AllocateSpace, Pool.Allocate, SDN.Use,
 * Sys.Audit), placed on the paths where Proxmox VE checks them (proxmox-behaviour.md §4 "How a privsep token
 * restricted to a pool sees the world"). docs/operations.md builds its role from `pveflowRolePrivileges`.
 */
export interface Requirement {
  /** A privilege, or a list of which any one suffices (the guest agent's privilege changed name in PVE 9). */
  privilege: string | readonly string[];
  why: string;
}

export interface PathRequirements {
  path: string;
  requirements: Requirement[];
}

export interface RequirementContext {
  pool: string;
  templateVmid: number;
  bridge: string;
  /** Storages of the template's disks and the snippets storage. */
  storages: readonly string[];
  /** Proxmox VE major version; undefined when unknown (then either agent privilege is accepted). */
  pveMajor?: number;
}

/** PVE ≤ 8 checks VM.Monitor for agent calls; PVE 9 removed it and checks VM.GuestAgent.Audit (or .Unrestricted). */
export function agentPrivilege(pveMajor: number | undefined): string | readonly string[] {
  if (pveMajor === undefined) return ['VM.GuestAgent.Audit', 'VM.GuestAgent.Unrestricted', 'VM.Monitor'];
  return pveMajor >= 9 ? ['VM.GuestAgent.Audit', 'VM.GuestAgent.Unrestricted'] : 'VM.Monitor';
}

export function requiredPrivileges(ctx: RequirementContext): PathRequirements[] {
  const onPool: Requirement[] = [
    { privilege: 'VM.Allocate', why: 'create VMs in the pool (clone with pool=) and destroy them' },
    { privilege: 'VM.Audit', why: 'read the VMs’ config and status, and see them in /cluster/resources' },
    { privilege: 'VM.Config.CPU', why: 'set cores' },
    { privilege: 'VM.Config.Memory', why: 'set memory' },
    { privilege: 'VM.Config.Disk', why: 'size and remove disks' },
    { privilege: 'VM.Config.Network', why: 'keep the NIC on its bridge' },
    { privilege: 'VM.Config.Options', why: 'set tags and the agent option' },
    { privilege: 'VM.Config.Cloudinit', why: 'set cicustom and ipconfig0' },
    { privilege: 'VM.PowerMgmt', why: 'start, shut down and stop the VMs' },
    { privilege: agentPrivilege(ctx.pveMajor), why: 'ask the guest agent for the VM’s IP address' },
    { privilege: 'Pool.Allocate', why: 'put new VMs into the pool' },
  ];
  return [
    { path: `/pool/${ctx.pool}`, requirements: onPool },
    {
      path: `/vms/${ctx.templateVmid}`,
      requirements: [{ privilege: 'VM.Clone', why: `clone the template ${ctx.templateVmid} (make it a member of the pool, or grant it there)` }],
    },
    ...[...new Set(ctx.storages)].map((storage) => ({
      path: `/storage/${storage}`,
      requirements: [{ privilege: 'Datastore.AllocateSpace', why: `allocate the clones’ volumes and snippets on ${storage}` }],
    })),
    {
      path: `/sdn/zones/localnetwork/${ctx.bridge}`,
      requirements: [{ privilege: 'SDN.Use', why: `attach NICs to ${ctx.bridge} (PVE ≥ 8 checks it on every clone)` }],
    },
    {
      path: '/',
      requirements: [{ privilege: 'Sys.Audit', why: 'read node load for placement and HA state on clean-up' }],
    },
  ];
}

/** The privileges a role for pveflow holds: everything above, for PVE `pveMajor` (docs/operations.md). */
export function pveflowRolePrivileges(pveMajor: number): string[] {
  const all = requiredPrivileges({ pool: 'p', templateVmid: 100, bridge: 'b', storages: ['s'], pveMajor }).flatMap((p) =>
    p.requirements.map((r) => (typeof r.privilege === 'string' ? r.privilege : r.privilege[0]!)),
  );
  return [...new Set(all)].sort();
}

/** Which requirements a set of granted privileges leaves unmet, as display names (`A or B` for alternatives). */
export function missingPrivileges(requirements: readonly Requirement[], granted: ReadonlySet<string>): string[] {
  return requirements
    .filter((r) => (typeof r.privilege === 'string' ? !granted.has(r.privilege) : !r.privilege.some((p) => granted.has(p))))
    .map((r) => (typeof r.privilege === 'string' ? r.privilege : r.privilege.join(' or ')));
}
