import type { BuildStage } from '../contracts/types';
import type { createActivities } from './index';

/** The stage a build's metrics time an activity under: one the build reports, `undo`, or null (not a build's step). */
export type ActivityBuildStage = BuildStage | 'undo' | null;

/**
 * Every activity of `createActivities`, with the stage of a vmBuild it belongs to (the stage the build reports
 * while it runs it; the undos a failed or cancelled build runs are `undo`). The type is over every activity
 * `createActivities` returns, so a new activity does not compile until it says where it belongs, or that it is not
 * a build's (null): the worker's stage durations (src/observability/activityMetrics.ts) cannot miss one.
 */
export const activityBuildStages: { readonly [Activity in keyof ReturnType<typeof createActivities>]: ActivityBuildStage } = {
  // The build's steps, in the order vmBuild runs them.
  planPlacement: 'choosing-node',
  reserveVmid: 'reserving-vmid',
  cloneTemplate: 'cloning',
  migrateVm: 'migrating',
  prepareCloudInit: 'uploading-snippet',
  configureVm: 'configuring',
  growDisk: 'configuring',
  startVm: 'starting',
  addToHa: 'starting',
  startVmUnderHa: 'starting',
  waitForGuestIp: 'waiting-for-ip',
  waitForPeer: 'vpn-peer',
  grantVpnAccess: 'vpn-access',
  // Both VPN steps in one activity: its result times the vpn-access part (laterStages).
  joinVpn: 'vpn-peer',
  // What a failed or cancelled build undoes.
  revokeVpnAccess: 'undo',
  destroyVm: 'undo',
  removeSnippet: 'undo',
  removeFromHa: 'undo',
  // Not a build's: a request's day-2 operations, lease and credentials, the cluster sync, image imports.
  moveSnippet: null,
  destroyCredentialKey: null,
  notifyLeaseEnding: null,
  observeCluster: null,
  shutdownGuest: null,
  shutdownVm: null,
  stopVm: null,
  rebootVm: null,
  planReconfigure: null,
  applyVmConfig: null,
  pendingConfig: null,
  createSnapshot: null,
  deleteSnapshot: null,
  revertSnapshot: null,
  moveVm: null,
  planImageImport: null,
  downloadImage: null,
  checkImageVolume: null,
  createImageVm: null,
  convertImageToTemplate: null,
  catalogueImage: null,
  destroyImageVm: null,
  removeImportVolume: null,
};
