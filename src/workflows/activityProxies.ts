import { proxyActivities, proxyLocalActivities } from '@temporalio/workflow';
import type { createActivities } from '../activities';
import { apiCall, boundedWait, cleanup, imageDownload, localApiCall, proxmoxTask } from './activityOptions';

/**
 * The activities as workflows call them, one proxy per preset of activityOptions: each call states which kind of work
 * it is by the proxy it goes through. Types only from the activities (their values never enter the workflow bundle).
 */
type Activities = ReturnType<typeof createActivities>;

/** Quick API calls as activities (apiCall). */
export const apiActivities = proxyActivities<Activities>(apiCall);
/** The same quick calls as local activities (localApiCall): placement, VMID, HA. */
export const localApiActivities = proxyLocalActivities<Activities>(localApiCall);
/** Proxmox tasks waited on while heartbeating (proxmoxTask). */
export const taskActivities = proxyActivities<Activities>(proxmoxTask);
/** Bounded waits: the guest's address, the NetBird peer (boundedWait). */
export const waitActivities = proxyActivities<Activities>(boundedWait);
/** Undo and cleanup (cleanup). */
export const cleanupActivities = proxyActivities<Activities>(cleanup);
/** An image's download, which may run for hours (imageDownload). */
export const downloadActivities = proxyActivities<Activities>(imageDownload);
