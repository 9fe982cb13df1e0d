import { getExternalWorkflowHandle, log, proxyActivities } from '@temporalio/workflow';
import type { createActivities } from '../activities';
import { clusterRead } from './activityOptions';
import { vmDriftSignal } from '../contracts/messages';
import type { ClusterSyncResult } from '../contracts/types';

const sync = proxyActivities<ReturnType<typeof createActivities>>(clusterRead);

/**
 * Keeps the picture true (run by a Schedule every SYNC_INTERVAL_S, overlapping runs skipped): one look at the
 * cluster, then each request whose VM vanished, moved, changed state or was resized outside pveflow is told so. Orphans (VMs in the pool no
 * request owns) are reported in the result for an operator; pveflow never deletes them by itself.
 */
export async function clusterSync(): Promise<ClusterSyncResult> {
  const seen = await sync.observeCluster();
  // All signals in one workflow task: a handful of history events whatever the number of drifts.
  const told = await Promise.allSettled(seen.drifts.map(({ serial, drift }) => getExternalWorkflowHandle(`vm-request-${serial}`).signal(vmDriftSignal, drift)));
  told.forEach((t, i) => {
    // A request that ended between the look and the signal has nothing left to be told.
    if (t.status === 'rejected') log.info('request ended before it could be told of its drift', { serial: seen.drifts[i]!.serial });
  });
  if (seen.orphanCount > 0) {
    log.warn(`${seen.orphanCount} VM(s) in the pool belong to no request`, { orphans: seen.orphans.slice(0, 10).map((o) => `${o.vmid}@${o.node}`) });
  }
  return { at: new Date().toISOString(), ...seen };
}
