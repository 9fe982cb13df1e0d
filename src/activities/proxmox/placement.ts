import { ApplicationFailure } from '@temporalio/activity';
import type { ClusterResource } from '../../clients/pve';
import { ErrorType } from '../../errors';
import type { ActivityDeps } from '../deps';
import { pveFailure } from './failures';

export interface ChooseNodeInput {
  serial: string;
  memoryMiB: number;
}

/**
 * The online node with the most free CPU, then memory, limited to PVE_NODE_SELECTOR. A pool-scoped token sees nodes
 * without metrics (no Sys.Audit on /nodes), so then the node running the fewest of the pool's VMs wins.
 */
export function placementActivities({ pve, settings }: ActivityDeps) {
  return {
    async chooseNode({ serial, memoryMiB }: ChooseNodeInput): Promise<string> {
      let resources: ClusterResource[];
      try {
        resources = await pve.clusterResources();
      } catch (err) {
        throw pveFailure(err, { serial }, 'listing cluster nodes');
      }
      const online = resources.filter(
        (r) => r.type === 'node' && r.status === 'online' && (!settings.nodeSelector || settings.nodeSelector.includes(r.node ?? '')),
      );
      const needBytes = memoryMiB * 1024 * 1024;
      const fits = online.filter((n) => n.maxmem === undefined || n.mem === undefined || n.maxmem - n.mem >= needBytes);
      if (fits.length === 0) {
        const seen = resources.filter((r) => r.type === 'node').map((r) => `${r.node} (${r.status})`).join(', ');
        throw ApplicationFailure.create({
          type: ErrorType.PveNoNodeAvailable,
          nonRetryable: true,
          message:
            `no node can take request ${serial}: nodes seen ${seen || 'none'}; selector ${settings.nodeSelector?.join(',') ?? 'none'}; ` +
            `${memoryMiB} MiB memory needed. Bring a node online, widen PVE_NODE_SELECTOR or free memory, then rebuild.`,
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
