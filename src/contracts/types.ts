import type { PoolTemplate } from '../domain/imageCatalogue';
import type { DeviceRequest } from '../domain/deviceRequest';
import type { SealedCredentials } from '../domain/guestCredentials';
import type { RequestPolicy } from '../domain/requestPolicy';
import type { OperationRecord, SnapshotRecord, VmSize } from './vmOperations';

/** What a person sees: the request's status as the seeds' console names it. */
export type RequestStatus =
  | 'Pending'
  | 'Approved'
  | 'Imaging'
  | 'Provisioning'
  | 'Configuring'
  | 'Fulfilled'
  | 'Failed'
  | 'Rejected'
  | 'Expired'
  | 'Cancelled'
  /** A cancel reached a running build: its undos are removing what it made. */
  | 'Cancelling'
  | 'Completing'
  | 'Completed';

/** Every status, in the order a request lives them: the one list the API's enum and the lifecycle table use. */
export const requestStatuses = [
  'Pending',
  'Approved',
  'Imaging',
  'Provisioning',
  'Configuring',
  'Fulfilled',
  'Failed',
  'Rejected',
  'Expired',
  'Cancelled',
  'Cancelling',
  'Completing',
  'Completed',
] as const satisfies readonly RequestStatus[];

/** The build task of one attempt. */
export type BuildState = 'queued' | 'started' | 'building' | 'completed' | 'failed' | 'cancelling' | 'cancelled';

export type BuildStage =
  'queued' | 'reserving-vmid' | 'choosing-node' | 'waiting-for-clone-slot' | 'cloning' | 'migrating' | 'uploading-snippet' | 'configuring' | 'starting' | 'waiting-for-ip' | 'vpn-peer' | 'vpn-access' | 'ready';

export interface BuildLogLine {
  at: string;
  stage: BuildStage;
  message: string;
}

/**
 * The build task of one attempt. While the build runs, its own workflow holds it (`buildStatus` query); once it ended,
 * its request keeps it (`build`, then among `previousBuilds`). Read it through the API's `currentBuild`.
 */
export interface BuildTask {
  workflowId: string;
  attempt: number;
  state: BuildState;
  stage: BuildStage;
  progress: number;
  /** The last lines of this attempt's log (bounded). */
  log: BuildLogLine[];
  /** When the build workflow started and ended, and how long it took (ARROW's "build time"). */
  startedAt?: string;
  endedAt?: string;
  durationSeconds?: number;
  /** The VM this attempt made and where (the request's `device` says where the VM is now). */
  vmid?: number;
  node?: string;
  error?: string;
  /** What a failed build could not undo: for an operator. */
  leftovers: string[];
  /** The VM among them, if its destroy failed: the request's completion destroys it. */
  leftoverVm?: LeftoverVm;
}

/** A VM a failed or cancelled build could not destroy; completion tries again. */
export interface LeftoverVm {
  vmid: number;
  node: string;
}

/** Where the request's VM lives and how to reach it. Never a secret. */
export interface DeviceSettings {
  vmid?: number;
  node?: string;
  hostname: string;
  ip?: string;
  vpnIp?: string;
  vpnHostname?: string;
  /** The VM's state as clusterSync or the last day-2 operation left it (`running` once built). */
  state?: string;
}

export interface TimelineEntry {
  at: string;
  event: string;
  by?: string;
  /** Set on the one entry that stands for earlier entries dropped to keep the timeline bounded: how many it replaces. */
  summarises?: number;
}

/** The whole record of a request, as the `status` query returns it. */
export interface RequestRecord {
  serial: string;
  request: DeviceRequest;
  status: RequestStatus;
  /** The latest build attempt. */
  build?: BuildTask;
  /** The attempts before it, oldest first (the last few, each with its own bounded log): a rebuild keeps them. */
  previousBuilds?: BuildTask[];
  device: DeviceSettings;
  timeline: TimelineEntry[];
  /** What completion could not remove, named exactly. */
  leftovers: string[];
  /** VMs earlier builds left behind (their destroy failed): completion destroys them with the request's VM. */
  leftoverVms?: LeftoverVm[];
  /**
   * Whether the guest's logins are waiting to be revealed, to whom they were, and until when that consultant may fetch
   * them again before they are shredded (REQUEST_REVEAL_REFETCH_MIN). Never the logins themselves.
   */
  credentials?: { available: boolean; revealedTo?: string; revealedAt?: string; refetchUntil?: string };
  /** The period end the lease notice went out for (an extension re-arms it). */
  noticeSentFor?: string;
  /** The last difference clusterSync found between the record and the cluster. */
  drift?: VmDrift & { at: string };
  /** The day-2 operations on the VM, latest last (bounded); the one still `running`, if any, is the only one. */
  operations?: OperationRecord[];
  /** The snapshots pveflow took of the VM for this request, oldest first. */
  snapshots?: SnapshotRecord[];
}

/** What clusterSync saw about a request's VM; `resized`: its config states another size than the request (a change made in Proxmox directly). */
export type VmDrift = { kind: 'vanished'; vmid: number } | { kind: 'moved'; vmid: number; from: string; to: string } | { kind: 'state'; vmid: number; status: string } | { kind: 'resized'; vmid: number; size: VmSize };

/** A template in the pool as the cluster sync reports it: the domain's, where the image catalogue is drawn from it. */
export type TemplateInfo = PoolTemplate;

/** A VM in the pool that no request owns: reported for an operator, never deleted by pveflow. */
export interface OrphanVm {
  vmid: number;
  node: string;
  name?: string;
}

/**
 * How long before its end a cluster sync may have read the cluster: the bound of its read activity (workflows'
 * activityOptions `clusterRead`). A reader of the sync's result (the API's catalogue) knows that what was made within
 * it may be newer than what the sync saw.
 */
export const CLUSTER_READ_BOUND_MS = 5 * 60_000;

export interface ClusterSyncResult {
  at: string;
  vmsSeen: number;
  requestsChecked: number;
  drifts: Array<{ serial: string; drift: VmDrift }>;
  /** The first orphans (bounded); `orphanCount` says how many there are in all. */
  orphans: OrphanVm[];
  orphanCount: number;
  templates: TemplateInfo[];
}

export interface VmRequestInput {
  request: DeviceRequest;
  /** Fixed at submission from configuration (the API passes it; so do the test driver and the tools). */
  policy: RequestPolicy;
  /** A fulfilled request continued-as-new to keep its history small carries its record over. */
  resumed?: RequestRecord;
  /** ... and its not yet revealed guest logins. */
  resumedCredentials?: SealedCredentials;
  /**
   * How the request behaves where its starter has a say (REQUEST_REVISION): a request keeps the revision it was
   * started with, so a running one never changes course under a new worker. Absent: 1.0's.
   */
  revision?: number;
}

/**
 * The request workflow's revision a starter asks for today. 2: started with its search attributes
 * (submittedSearchAttributes), it does not upsert them again; an approval followed at once by the build is published
 * with the build (one upsert, not two in the same workflow task). Each is one billable Action fewer per request.
 * A change a starter cannot ask for (every request must take it) goes behind patched() instead (workflows/patches.ts).
 */
export const REQUEST_REVISION = 2;

export interface VmBuildInput {
  request: DeviceRequest;
  attempt: number;
}

export interface VmBuildResult {
  /** The guest's generated logins: kept out of the record, revealed to one consultant through `revealCredentials`. */
  credentials?: SealedCredentials;
  vmid: number;
  node: string;
  ip: string;
  vpnIp: string;
  vpnHostname: string;
  build: BuildTask;
  /** Whether the build made the VM an HA resource (HA_GROUP set): the completion takes it out of HA first only then. */
  haResource?: boolean;
}

export interface VmCompletionInput {
  serial: string;
  name: string;
  vmid?: number;
  node?: string;
  /** VMs failed builds could not destroy: destroyed (with their snippets) too. */
  leftoverVms?: LeftoverVm[];
  /** What the guest is given to shut down before it is stopped (the request's policy); absent: policyDefaults'. */
  shutdownTimeoutSeconds?: number;
  /**
   * false: the build did not make the VM an HA resource, so there is none to remove before the shutdown (an activity
   * fewer). Absent (requests built before 1.1, or continued as new since): looked for, as before.
   */
  haResource?: boolean;
}

export interface VmCompletionResult {
  vmDestroyed: boolean;
  leftovers: string[];
}

/** Sent by a build to its request at each phase change, so the request's status and search attributes follow. */
export interface BuildPhase {
  attempt: number;
  status: Extract<RequestStatus, 'Provisioning' | 'Configuring'>;
  vmid?: number;
  node?: string;
}
