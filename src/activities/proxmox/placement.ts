import { ApplicationFailure } from '@temporalio/activity';
import type { ClusterResource, VmConfig } from '../../clients/pve';
import { ErrorType } from '../../errors';
import type { ActivityDeps } from '../deps';
import { pveFailure } from './failures';
import { TemplateConfigs } from './templateConfigs';
import { cloneSlotKeys } from '../../domain/cloneSlotKeys';
import { clonePlan, cloneDestinations, formatBytes, storageAvail, templateVolumes, type ClonePlan } from './templateStorage';
import type { CloneSlotRequest } from '../../contracts/cloneSlotsMessages';

export interface ChooseNodeInput {
  serial: string;
  memoryMiB: number;
  cores: number;
  /** The request's template (else PVE_TEMPLATE_VMID): where its disks live decides where the VM can be made. */
  templateVmid?: number;
  /** The request's clone mode (else PVE_FULL_CLONE_DEFAULT): a full clone needs the disks' size free. */
  fullClone?: boolean;
  /** The image's template on each node, when it has one per node (the request's `imageTemplates`): each is a place to clone. */
  templates?: Array<{ node: string; vmid: number }>;
}

/**
 * What a build asks the clone-slots coordinator for (all but who asks and for how long): the places it may go, each
 * on `node` or cloned on `cloneOn` (the template's node, its volumes local there) and migrated to `node`; what it
 * takes of a node; the pool's running VMs; and the clone slot keys of its clone, which runs on the template's node
 * whatever the target.
 */
export type PlacementPlan = Omit<CloneSlotRequest, 'holder' | 'ttlMs'> & {
  /** Where the clone loads, for the build's log: `<node>/<storage>,…`. */
  cloneLoad: string;
  /**
   * For an image with a template per node: the template to clone on each node the clone may run on (the granted
   * offer's `cloneOn`, else its `node`). Absent: the request's template.
   */
  templates?: Record<string, number>;
};

/**
 * The online nodes that can take the VM, best first by free CPU, then memory (the coordinator picks among them,
 * counting what builds placed at the same moment reserve), limited to PVE_NODE_SELECTOR, with the memory the request
 * asks for and, for a full clone, the template's disk size free on the storage it copies to. A template whose
 * volumes sit on local storage can only be cloned on its own node (proxmox-behaviour.md §6.4): the VM goes there
 * when that node can take it; when it cannot (left out by the selector, short of memory or space), the VM is fully
 * cloned there and migrated to the best node that has the same local storages (linked clones of a local base
 * cannot migrate). Only when no node can take it is the build refused, with what to change. A pool-scoped token
 * sees nodes without metrics (no Sys.Audit on /nodes), so then the node running the fewest of the pool's VMs wins.
 * A local activity: it only reads, and its plan is what the build then asks the coordinator for.
 *
 * Two Proxmox calls: the cluster's resources (nodes, storages and the template in one answer) and the template's
 * config (which storages its volumes are on), the latter shared with the clone for 30 s. An image with a template
 * per node costs the same one read of the resources, and one config read per template (none while cached).
 */
export function placementActivities({ pve, settings }: ActivityDeps, templates = new TemplateConfigs(pve)) {
  return {
    async planPlacement(input: ChooseNodeInput): Promise<PlacementPlan> {
      const perNode = input.templates ?? [];
      return perNode.length > 1 ? placeAmong(input, perNode) : place(input);
    },
  };

  /**
   * An image with a template per node (its disks local to each): every node holding one is a place, cloning its own
   * template there, as `place` plans it for each template; a node reached only by migrating another node's clone
   * comes after (one offer per node). Each offer carries the clone slot keys of its own clone (on its template's
   * node), which the coordinator grants on; the plan's keys are those of every template's node, for a coordinator
   * that does not know per-offer keys yet (it waits for all of them: more than needed, never more clones than a limit
   * allows). Refused only when no template has a place, with the first template's reason.
   */
  async function placeAmong(input: ChooseNodeInput, perNode: Array<{ node: string; vmid: number }>): Promise<PlacementPlan> {
    // A template gone since the intake (removed by hand) is no place: left out, unless none is left (then the clone
    // stage reports the request's template missing, as for any request).
    // One read of the cluster serves every template's plan (which templates exist, the nodes, the storages); each
    // template's config comes from the worker's cache, read in parallel when it is not there.
    const resources = await readResources(input.serial);
    const present = perNode.filter((t) => resources.some((r) => r.type === 'qemu' && r.vmid === t.vmid && r.template));
    if (present.length === 0) return place(input, resources);
    const outcomes = await Promise.allSettled(present.map((t) => place({ ...input, templateVmid: t.vmid }, resources)));
    const plans = outcomes.flatMap((o, i) => (o.status === 'fulfilled' ? [{ vmid: present[i]!.vmid, plan: o.value }] : []));
    if (plans.length === 0) throw (outcomes[0] as PromiseRejectedResult).reason;
    const offers = new Map<string, { offer: PlacementPlan['offers'][number]; vmid: number }>();
    for (const { vmid, plan } of plans) {
      for (const offer of plan.offers) {
        const had = offers.get(offer.node);
        const keyed = plan.keys.length > 0 ? { ...offer, keys: plan.keys } : offer;
        if (!had || (had.offer.cloneOn && !offer.cloneOn)) offers.set(offer.node, { offer: keyed, vmid });
      }
    }
    const kept = [...offers.values()];
    return {
      offers: kept.map((k) => k.offer),
      need: plans[0]!.plan.need,
      running: plans[0]!.plan.running,
      keys: [...new Set(plans.flatMap((p) => p.plan.keys))],
      limits: Object.assign({}, ...plans.map((p) => p.plan.limits)) as PlacementPlan['limits'],
      cloneLoad: plans.map((p) => p.plan.cloneLoad).join(' or '),
      templates: Object.fromEntries(kept.map((k) => [k.offer.cloneOn ?? k.offer.node, k.vmid])),
    };
  }

  async function readResources(serial: string): Promise<ClusterResource[]> {
    try {
      return await pve.clusterResources();
    } catch (err) {
      throw pveFailure(err, { serial }, 'listing cluster nodes and storages');
    }
  }

  /** The plan for one template; `read`: the cluster's resources when the caller has read them already. */
  async function place(input: ChooseNodeInput, read?: ClusterResource[]): Promise<PlacementPlan> {
    const { serial, memoryMiB } = input;
    const mayMigrate = true;
    const templateVmid = input.templateVmid ?? settings.templateVmid;
    const full = input.fullClone ?? settings.fullCloneDefault;
    const resources = read ?? (await readResources(serial));
    const nodes = resources.filter((r) => r.type === 'node');
    const storages = resources.filter((r) => r.type === 'storage');
    const template = resources.find((r) => r.type === 'qemu' && r.vmid === templateVmid && r.template);

    // A template the token cannot see is the clone stage's to report (it names the pool and what to do); until
    // then, place as if its disks were on shared storage and needed no space.
    let volumes: ReturnType<typeof templateVolumes> = [];
    if (template?.node) {
      let config: VmConfig;
      try {
        config = await templates.get(template.node, templateVmid);
      } catch (err) {
        throw pveFailure(err, { serial, vmid: templateVmid, node: template.node }, `reading the disks of template ${templateVmid}`);
      }
      volumes = templateVolumes(config.raw);
    }
    const targetStorage = (f: boolean) => (f ? settings.targetStorage : undefined);
    const plan: ClonePlan = clonePlan(volumes, storages, { full, targetStorage: targetStorage(full) });
    const pinnedTo = plan.localStorages.length > 0 ? template?.node : undefined;

    const selected = (n: ClusterResource) => !settings.nodeSelector || settings.nodeSelector.includes(n.node ?? '');
    const needBytes = memoryMiB * 1024 * 1024;
    const memoryFits = (n: ClusterResource) => n.maxmem === undefined || n.mem === undefined || n.maxmem - n.mem >= needBytes;
    /** The storages this node lacks for the clone, as `sid (free < needed)`; empty when it has all. */
    const shortfall = (p: ClonePlan, node: string) =>
      Object.entries(p.spaceNeeded).flatMap(([sid, bytes]) => {
        if (!storages.some((s) => s.storage === sid)) return []; // not visible to the token: Proxmox judges it
        const avail = storageAvail(storages, sid, node);
        if (avail === undefined) return [`${sid} (not available on ${node})`];
        return avail < bytes ? [`${sid} (${formatBytes(avail)} free < ${formatBytes(bytes)} needed)`] : [];
      });
    const storageShortfall = (node: string) => shortfall(plan, node);
    const poolVmsOn = (node: string) => resources.filter((r) => r.type === 'qemu' && r.node === node && !r.template).length;
    const score = (n: ClusterResource) => ({
      freeCpu: n.maxcpu !== undefined && n.cpu !== undefined ? n.maxcpu * (1 - n.cpu) : -poolVmsOn(n.node!),
      freeMem: n.maxmem !== undefined && n.mem !== undefined ? n.maxmem - n.mem : 0,
    });
    const metrics = nodes.some((n) => n.maxcpu !== undefined && n.cpu !== undefined);
    const running = resources.filter((r) => r.type === 'qemu' && r.status === 'running' && r.node).map((r) => `${r.node}/${r.vmid}`);
    /** The clone runs on the template's node; a linked clone allocates on the template's storages, a full one where it copies to. */
    const slotFor = (f: boolean) => {
      const destinations = cloneDestinations(volumes, { full: f, targetStorage: targetStorage(f) });
      const cloneNode = template?.node ?? '';
      const keyed =
        settings.cloneLimits && cloneNode
          ? cloneSlotKeys({ node: cloneNode, storages: destinations.map((id) => ({ id, shared: storages.some((r) => r.storage === id && r.shared) })) }, settings.cloneLimits)
          : { keys: [], limits: {} };
      return { ...keyed, cloneLoad: `${cloneNode || "the template's node"}/${destinations.join(',') || 'its storages'}` };
    };
    const planOf = (list: ClusterResource[], f: boolean, cloneOn?: string): PlacementPlan => ({
      offers: list.map((n) => ({ node: n.node!, ...(cloneOn ? { cloneOn } : {}), ...score(n) })),
      need: metrics ? { cpu: input.cores, mem: needBytes } : { cpu: 1, mem: 0 },
      running,
      ...slotFor(f),
    });

    if (pinnedTo) {
      const home = nodes.find((n) => n.node === pinnedTo);
      if (home && home.status === 'online' && selected(home) && memoryFits(home) && storageShortfall(pinnedTo).length === 0) return planOf([home], full);
      if (mayMigrate && home?.status === 'online') {
        // A full clone on the template's node (it needs the space there for a moment), then an offline migration
        // to a node with the same local storages and room for the disks.
        const copy = clonePlan(volumes, storages, { full: true, targetStorage: targetStorage(true) });
        const movable = copy.localStorages.length > 0 && shortfall(copy, pinnedTo).length === 0;
        const targets = nodes.filter(
          (n) =>
            n.node !== pinnedTo && n.status === 'online' && selected(n) && memoryFits(n) && shortfall(copy, n.node!).length === 0 && copy.localStorages.every((sid) => storageAvail(storages, sid, n.node!) !== undefined),
        );
        if (movable && targets.length > 0) return planOf(targets, true, pinnedTo);
      }
    }

    if (pinnedTo && !nodes.some((n) => n.node === pinnedTo && selected(n))) {
      throw ApplicationFailure.create({
        type: ErrorType.PveNoNodeAvailable,
        nonRetryable: true,
        message:
          `request ${serial} needs template ${templateVmid}, whose volumes are on local storage ${plan.localStorages.join(', ')} of node ` +
          `${pinnedTo}: Proxmox can clone it only on ${pinnedTo}, and PVE_NODE_SELECTOR (${settings.nodeSelector?.join(',')}) excludes ` +
          `that node${mayMigrate ? ` while no selected node has ${plan.localStorages.join(', ')} with room to migrate the clone to` : ''}. ` +
          `Move the template's disks to shared storage (Hardware > Disk Action > Move Storage, or 'qm disk move'), ` +
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
    return planOf(fits, full);
  }
}
