import type { DeviceRequest } from '../domain/deviceRequest';

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
  | 'Cancelled'
  | 'Completing'
  | 'Completed';

/** The build task of one attempt. */
export type BuildState = 'queued' | 'started' | 'building' | 'completed' | 'failed' | 'cancelling' | 'cancelled';

export type BuildStage =
  | 'queued'
  | 'reserving-vmid'
  | 'choosing-node'
  | 'cloning'
  | 'uploading-snippet'
  | 'configuring'
  | 'starting'
  | 'waiting-for-ip'
  | 'vpn-peer'
  | 'vpn-access'
  | 'ready';

export interface BuildLogLine {
  at: string;
  stage: BuildStage;
  message: string;
}

export interface BuildTask {
  workflowId: string;
  attempt: number;
  state: BuildState;
  stage: BuildStage;
  progress: number;
  log: BuildLogLine[];
  error?: string;
  /** What a failed build could not undo: for an operator. */
  leftovers: string[];
}

/** Where the request's VM lives and how to reach it. Never a secret. */
export interface DeviceSettings {
  vmid?: number;
  node?: string;
  hostname: string;
  ip?: string;
  vpnIp?: string;
  vpnHostname?: string;
}

export interface TimelineEntry {
  at: string;
  event: string;
  by?: string;
}

/** The whole record of a request, as the `status` query returns it. */
export interface RequestRecord {
  serial: string;
  request: DeviceRequest;
  status: RequestStatus;
  build?: BuildTask;
  device: DeviceSettings;
  timeline: TimelineEntry[];
  /** What completion could not remove, named exactly. */
  leftovers: string[];
}

export interface VmRequestInput {
  request: DeviceRequest;
}

export interface VmBuildInput {
  request: DeviceRequest;
  attempt: number;
}

export interface VmBuildResult {
  vmid: number;
  node: string;
  ip: string;
  vpnIp: string;
  vpnHostname: string;
  build: BuildTask;
}

export interface VmCompletionInput {
  serial: string;
  name: string;
  vmid?: number;
  node?: string;
}

export interface VmCompletionResult {
  vmDestroyed: boolean;
  leftovers: string[];
}

/** Sent by a build to its request at each phase change, so the request's status and search attributes follow. */
export interface BuildPhase {
  attempt: number;
  status: Extract<RequestStatus, 'Imaging' | 'Provisioning' | 'Configuring'>;
  vmid?: number;
  node?: string;
}
