import type { Client } from '@temporalio/client';
import type { ClusterResource } from '../../clients/pve';
import type { ClusterSyncResult, OrphanVm, TemplateInfo, VmDrift } from '../../contracts/types';
import type { VmSize } from '../../contracts/vmOperations';
import { statedQuotaSize } from '../../contracts/memos';
import type { Usage } from '../../domain/quotaUsage';
import { PveNodeKey, RequestStatusKey, SerialKey, VmIdKey, VmStateKey } from '../../contracts/searchAttributes';
import type { ActivityDeps } from '../deps';
import { taskQueueClause } from '../../domain/instanceScope';
import { pveFailure } from '../proxmox/failures';

/** Orphans beyond this many are counted, not listed: the result must stay small at any cluster size. */
const MAX_ORPHANS_LISTED = 100;
/** States a VM passes through on its own (or an operator's) way: not drift. */
const TRANSITIONAL = new Set(['unknown', 'prelaunch', 'inmigrate', 'postmigrate']);

interface ManagedVm {
  serial: string;
  vmid: number;
  node?: string;
  requestStatus?: string;
  knownState: string;
  /** The size the request states, from its quota memo (what the org's quota counts it at); absent: not compared. */
  size?: Usage;
}

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

/** The size a VM has in the cluster's listing, as a request states it; undefined when the listing does not say. */
function sizeSeen(vm: ClusterResource): VmSize | undefined {
  if (vm.maxcpu === undefined || vm.maxmem === undefined) return undefined;
  return { cores: vm.maxcpu, memoryMiB: Math.round(vm.maxmem / MiB), ...(vm.maxdisk ? { diskGiB: Math.ceil(vm.maxdisk / GiB) } : {}) };
}

/**
 * Whether the VM's size is not the one the request states: cores or memory differ, or the disk grew past what it states
 * (a disk never shrinks, and a request that states none keeps its template's).
 */
function resized(seen: VmSize, stated: Usage): boolean {
  const diskGrew = stated.disk_gib > 0 && seen.diskGiB !== undefined && seen.diskGiB > stated.disk_gib;
  return seen.cores !== stated.cores || seen.memoryMiB !== stated.memory_mib || diskGrew;
}

/**
 * One look at the cluster for clusterSync: a single `GET /cluster/resources`, the managed requests from Temporal's
 * visibility (their search attributes: serial, VMID, node, status, last known VM state), and only the differences
 * back to the workflow — so the sync's history and payloads stay flat however many VMs the pool holds.
 */
export function observeClusterActivities({ pve, temporal }: ActivityDeps) {
  return {
    async observeCluster(): Promise<Omit<ClusterSyncResult, 'at'>> {
      let resources: ClusterResource[];
      try {
        resources = await pve.clusterResources('vm');
      } catch (err) {
        throw pveFailure(err, { serial: 'cluster sync' }, 'reading /cluster/resources');
      }
      const managed = await managedVms(temporal.client, temporal.taskQueue);
      const vms = new Map(resources.filter((r) => r.type === 'qemu' && r.vmid !== undefined).map((r) => [r.vmid!, r]));

      const drifts: Array<{ serial: string; drift: VmDrift }> = [];
      for (const m of managed) {
        if (m.requestStatus !== 'Fulfilled') continue; // a build in flight owns its VM's state
        const vm = vms.get(m.vmid);
        if (!vm) {
          drifts.push({ serial: m.serial, drift: { kind: 'vanished', vmid: m.vmid } });
          continue;
        }
        if (vm.lock || TRANSITIONAL.has(vm.status ?? 'unknown')) continue;
        if (vm.node && m.node && vm.node !== m.node) drifts.push({ serial: m.serial, drift: { kind: 'moved', vmid: m.vmid, from: m.node, to: vm.node } });
        if (vm.status && vm.status !== m.knownState) drifts.push({ serial: m.serial, drift: { kind: 'state', vmid: m.vmid, status: vm.status } });
        const seen = sizeSeen(vm);
        if (seen && m.size && resized(seen, m.size)) drifts.push({ serial: m.serial, drift: { kind: 'resized', vmid: m.vmid, size: seen } });
      }

      const owned = new Set(managed.map((m) => m.vmid));
      const orphans: OrphanVm[] = [];
      let orphanCount = 0;
      const templates: TemplateInfo[] = [];
      for (const vm of vms.values()) {
        if (vm.template) {
          templates.push({
            vmid: vm.vmid!,
            name: vm.name ?? `VM ${vm.vmid}`,
            node: vm.node ?? '',
            cores: vm.maxcpu,
            memoryMiB: vm.maxmem !== undefined ? Math.round(vm.maxmem / 1024 / 1024) : undefined,
            diskGiB: vm.maxdisk !== undefined ? Math.round(vm.maxdisk / 1024 ** 3) : undefined,
          });
          continue;
        }
        if (owned.has(vm.vmid!) || vm.lock === 'clone' || vm.lock === 'create') continue; // being made right now
        orphanCount++;
        if (orphans.length < MAX_ORPHANS_LISTED) orphans.push({ vmid: vm.vmid!, node: vm.node ?? '', name: vm.name });
      }
      return { vmsSeen: vms.size, requestsChecked: managed.length, drifts, orphans, orphanCount, templates };
    },
  };
}

/**
 * Every running request of this pveflow instance that has (or is getting) a VM, read from its search attributes.
 * Another instance sharing the namespace has its own task queue: its requests are not ours to call vanished.
 */
async function managedVms(client: Client, taskQueue: string): Promise<ManagedVm[]> {
  const out: ManagedVm[] = [];
  const query = `WorkflowType = 'vmRequest' AND ExecutionStatus = 'Running' AND VmId IS NOT NULL AND ${taskQueueClause(taskQueue)}`;
  for await (const wf of client.workflow.list({ query, pageSize: 1000 })) {
    const sa = wf.typedSearchAttributes;
    const vmid = sa.get(VmIdKey);
    const serial = sa.get(SerialKey);
    if (vmid === undefined || serial === undefined) continue;
    const size = statedQuotaSize(wf.memo);
    out.push({ serial, vmid, node: sa.get(PveNodeKey), requestStatus: sa.get(RequestStatusKey), knownState: sa.get(VmStateKey) ?? 'running', ...(size ? { size } : {}) });
  }
  return out;
}
