import type { ActivityDeps } from './deps';
import { accessActivities } from './netbird/access';
import { leaseNoticeActivities } from './notifications/leaseNotice';
import { observeClusterActivities } from './sync/observeCluster';
import { peerActivities } from './netbird/peer';
import { vpnJoinActivities } from './netbird/join';
import { cloneActivities } from './proxmox/clone';
import { configureActivities } from './proxmox/configure';
import { destroyActivities } from './proxmox/destroy';
import { guestAgentActivities } from './proxmox/guestAgent';
import { haActivities } from './proxmox/ha';
import { migrateActivities } from './proxmox/migrate';
import { placementActivities } from './proxmox/placement';
import { TemplateConfigs } from './proxmox/templateConfigs';
import { powerActivities } from './proxmox/power';
import { vmidActivities } from './proxmox/vmid';
import { cloudInitSnippetActivities } from './snippets/cloudInitSnippet';
import { powerControlActivities } from './proxmox/powerControl';
import { reconfigureActivities } from './proxmox/reconfigure';
import { snapshotActivities } from './proxmox/snapshots';
import { liveMigrateActivities } from './proxmox/liveMigrate';
import { imageImportActivities } from './proxmox/imageImport';

export type { ActivityDeps, ActivitySettings } from './deps';
export { activityBuildStages, type ActivityBuildStage } from './buildStages';

/** Every activity pveflow's workflows call, bound to their dependencies (built in worker.ts or by a test). */
export function createActivities(deps: ActivityDeps) {
  const templates = new TemplateConfigs(deps.pve);
  return {
    ...vmidActivities(deps),
    ...placementActivities(deps, templates),
    ...cloneActivities(deps),
    ...migrateActivities(deps),
    ...configureActivities(deps),
    ...powerActivities(deps),
    ...haActivities(deps),
    ...guestAgentActivities(deps),
    ...destroyActivities(deps),
    ...cloudInitSnippetActivities(deps),
    ...peerActivities(deps),
    ...accessActivities(deps),
    ...vpnJoinActivities(deps),
    ...leaseNoticeActivities(),
    ...observeClusterActivities(deps),
    ...powerControlActivities(deps),
    ...reconfigureActivities(deps),
    ...snapshotActivities(deps),
    ...liveMigrateActivities(deps),
    ...imageImportActivities(deps),
  };
}
