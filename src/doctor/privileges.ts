import { agentPrivilege, privilegeNeeds, privilegeText, pveflowRole, type PrivilegeScope } from '../domain/pveflowPrivileges';

/**
 * The privileges pveflow's token needs, per ACL path, and why: src/domain/pveflowPrivileges.ts (what a build and a
 * completion send) placed on the paths of this cluster. Needs tied to a setting that is off are left out.
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
  /** Storages of the template's disks. */
  storages: readonly string[];
  /** The storage the snippets go to (PVE_SNIPPETS_STORAGE); omitted: the template's storages only. */
  snippetsStorage?: string;
  /** Proxmox VE major version; undefined when unknown (then either agent privilege is accepted). */
  pveMajor?: number;
  /** Optional settings that are on (`PVE_HA`), whose needs are then checked too. */
  with?: readonly string[];
  /** Storages that take `import` content on the nodes VMs may run on (image imports download there). */
  importStorages?: readonly string[];
  /** The nodes VMs may run on (imports download on them). */
  nodes?: readonly string[];
}

export { agentPrivilege };

export function requiredPrivileges(ctx: RequirementContext): PathRequirements[] {
  const pathsOf = (scope: PrivilegeScope): string[] => {
    switch (scope) {
      case 'pool':
        return [`/pool/${ctx.pool}`];
      case 'template':
        return [`/vms/${ctx.templateVmid}`];
      case 'template-storages':
        return ctx.storages.map((s) => `/storage/${s}`);
      case 'snippets-storage':
        return ctx.snippetsStorage ? [`/storage/${ctx.snippetsStorage}`] : [];
      case 'bridge':
        return [`/sdn/zones/localnetwork/${ctx.bridge}`];
      case 'root':
        return ['/'];
      case 'import-storages':
        return (ctx.importStorages ?? []).map((s) => `/storage/${s}`);
      case 'nodes':
        return (ctx.nodes ?? []).map((n) => `/nodes/${n}`);
      case 'sdn-zone':
        return ['/sdn/zones/localnetwork'];
    }
  };
  const byPath = new Map<string, Requirement[]>();
  const order: PrivilegeScope[] = ['pool', 'template', 'template-storages', 'snippets-storage', 'import-storages', 'bridge', 'sdn-zone', 'nodes', 'root'];
  for (const need of privilegeNeeds(ctx.pveMajor).sort((a, b) => order.indexOf(a.scope) - order.indexOf(b.scope))) {
    if (need.onlyWith && !ctx.with?.includes(need.onlyWith)) continue;
    for (const path of pathsOf(need.scope)) {
      const list = byPath.get(path) ?? [];
      const same = list.find((r) => privilegeText(r.privilege) === privilegeText(need.privilege));
      if (same) {
        if (!same.why.includes(need.why)) same.why += `, ${need.why}`;
      } else list.push({ privilege: need.privilege, why: need.why });
      byPath.set(path, list);
    }
  }
  // Alternatives of which the same path already needs one (cloud-init keys: Cloudinit or Network, and Network is needed).
  return [...byPath].map(([path, list]) => ({
    path,
    requirements: list.filter((r) => typeof r.privilege === 'string' || !r.privilege.some((p) => list.some((o) => o.privilege === p))),
  }));
}

/** The privileges a role for pveflow holds, for PVE `pveMajor` (docs/operations.md). */
export function pveflowRolePrivileges(pveMajor: number): string[] {
  return pveflowRole(pveMajor);
}

/** Which requirements a set of granted privileges leaves unmet, as display names (`A or B` for alternatives). */
export function missingPrivileges(requirements: readonly Requirement[], granted: ReadonlySet<string>): string[] {
  return requirements.filter((r) => (typeof r.privilege === 'string' ? !granted.has(r.privilege) : !r.privilege.some((p) => granted.has(p)))).map((r) => privilegeText(r.privilege));
}
