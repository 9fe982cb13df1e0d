import { ApplicationFailure } from '@temporalio/activity';
import type { ClusterResource, VmConfig } from '../../clients/pve';
import { ErrorType } from '../../errors';
import type { ActivityDeps } from '../deps';
import { pveFailure } from './failures';
import { TemplateConfigs } from './templateConfigs';
import { clonePlan, formatBytes, storageAvail, templateVolumes, type ClonePlan } from './templateStorage';

export interface ChooseNodeInput {
  serial: string;
  memoryMiB: number;
  /** The request's template (else PVE_TEMPLATE_VMID): where its disks live decides where the VM can be made. */
  templateVmid?: number;
  /** The request's clone mode (else PVE_FULL_CLONE_DEFAULT): a full clone needs the disks' size free. */
  fullClone?: boolean;
}

/**
 * The online node with the most free CPU, then memory, limited to PVE_NODE_SELECTOR, with the memory the request
 * asks for and, for a full clone, the template's disk size free on the storage it copies to. A template whose
 * volumes sit on local storage can only be cloned on its own node (proxmox-behaviour.md §6.4), so the VM goes
 * there, or the build is refused with what to change. A pool-scoped token sees nodes without metrics (no
 * Sys.Audit on /nodes), so then the node running the fewest of the pool's VMs wins.
 *
 * Two Proxmox calls: the cluster's resources (nodes, storages and the template in one answer) and the template's
 * config (which storages its volumes are on).
 */
export function placementActivities({ pve, settings }: ActivityDeps, templates = new TemplateConfigs(pve)) {
  return {
    async chooseNode(input: ChooseNodeInput): Promise<string> {
      const { serial, memoryMiB } = input;
      const templateVmid = input.templateVmid ?? settings.templateVmid;
      const full = input.fullClone ?? settings.fullCloneDefault;
      let resources: ClusterResource[];
      try {
        resources = await pve.clusterResources();
      } catch (err) {
        throw pveFailure(err, { serial }, 'listing cluster nodes and storages');
      }
      const nodes = resources.filter((r) => r.type === 'node');
      const storages = resources.filter((r) => r.type === 'storage');
      const template = resources.find((r) => r.type === 'qemu' && r.vmid === templateVmid && r.template);

      // A template the token cannot see is the clone stage's to report (it names the pool and what to do); until
      // then, place as if its disks were on shared storage and needed no space.
      let plan: ClonePlan = { spaceNeeded: {}, localStorages: [] };
      if (template?.node) {
        let config: VmConfig;
        try {
          config = await templates.get(template.node, templateVmid);
        } catch (err) {
          throw pveFailure(err, { serial, vmid: templateVmid, node: template.node }, `reading the disks of template ${templateVmid}`);
        }
        plan = clonePlan(templateVolumes(config.raw), storages, { full, targetStorage: full ? settings.targetStorage : undefined });
      }
      const pinnedTo = plan.localStorages.length > 0 ? template?.node : undefined;

      const selected = (n: ClusterResource) => !settings.nodeSelector || settings.nodeSelector.includes(n.node ?? '');
      const needBytes = memoryMiB * 1024 * 1024;
      const memoryFits = (n: ClusterResource) => n.maxmem === undefined || n.mem === undefined || n.maxmem - n.mem >= needBytes;
      /** The storages this node lacks for the clone, as `sid (free < needed)`; empty when it has all. */
      const storageShortfall = (node: string) =>
        Object.entries(plan.spaceNeeded).flatMap(([sid, bytes]) => {
          if (!storages.some((s) => s.storage === sid)) return []; // not visible to the token: Proxmox judges it
          const avail = storageAvail(storages, sid, node);
          if (avail === undefined) return [`${sid} (not available on ${node})`];
          return avail < bytes ? [`${sid} (${formatBytes(avail)} free < ${formatBytes(bytes)} needed)`] : [];
        });

      if (pinnedTo && !nodes.some((n) => n.node === pinnedTo && selected(n))) {
        throw ApplicationFailure.create({
          type: ErrorType.PveNoNodeAvailable,
          nonRetryable: true,
          message:
            `request ${serial} needs template ${templateVmid}, whose volumes are on local storage ${plan.localStorages.join(', ')} of node ` +
            `${pinnedTo}: Proxmox can clone it only on ${pinnedTo}, and PVE_NODE_SELECTOR (${settings.nodeSelector?.join(',')}) excludes ` +
            `that node. Move the template's disks to shared storage (Hardware > Disk Action > Move Storage, or 'qm disk move'), ` +
            `or add ${pinnedTo} to PVE_NODE_SELECTOR, then rebuild.`,
        });
      }

      const candidates = nodes.filter((n) => n.status === 'online' && selected(n) && (!pinnedTo || n.node === pinnedTo));
      const fits = candidates.filter((n) => memoryFits(n) && storageShortfall(n.node!).length === 0);
      if (fits.length === 0) {
        const seen = nodes.map((r) => `${r.node} (${r.status})`).join(', ');
        const lacking = candidates.flatMap((n) => {
          const why = [...(memoryFits(n) ? [] : ['memory']), ...storageShortfall(n.node!)];
          return why.length ? [`${n.node}: ${why.join(', ')}`] : [];
        });
        const needs = [`${memoryMiB} MiB memory`, ...Object.entries(plan.spaceNeeded).map(([sid, b]) => `${formatBytes(b)} on ${sid} for a full clone`)];
        throw ApplicationFailure.create({
          type: ErrorType.PveNoNodeAvailable,
          nonRetryable: true,
          message:
            `no node can take request ${serial}: nodes seen ${seen || 'none'}; selector ${settings.nodeSelector?.join(',') ?? 'none'}` +
            `${pinnedTo ? `; template ${templateVmid} is on local storage of ${pinnedTo}, so only ${pinnedTo} can hold the clone` : ''}; ` +
            `${needs.join(' and ')} needed${lacking.length ? ` (short: ${lacking.join('; ')})` : ''}. ` +
            `Bring a node online, widen PVE_NODE_SELECTOR, free memory or storage` +
            `${Object.keys(plan.spaceNeeded).length ? ', choose another PVE_TARGET_STORAGE or use a linked clone' : ''}, then rebuild.`,
        });
      }
      const poolVmsOn = (node: string) => resources.filter((r) => r.type === 'qemu' && r.node === node && !r.template).length;
      const score = (n: ClusterResource) => ({
        freeCpu: n.maxcpu !== undefined && n.cpu !== undefined ? n.maxcpu * (1 - n.cpu) : -poolVmsOn(n.node!),
        freeMem: n.maxmem !== undefined && n.mem !== undefined ? n.maxmem - n.mem : 0,
      });
      fits.sort((a, b) => {
        const sa = score(a);
        const sb = score(b);
        return sb.freeCpu - sa.freeCpu || sb.freeMem - sa.freeMem || a.node!.localeCompare(b.node!);
      });
      return fits[0]!.node!;
    },
  };
}
