import { condition, defineSignal, executeChild, getExternalWorkflowHandle, proxyActivities, setHandler, workflowInfo } from '@temporalio/workflow';

/**
 * The least a workflow can ask of Temporal, for `bench/temporal-floor.ts`: no pveflow code, no payload codec, no
 * search attributes. What these cost the dev server is a floor under what any workflow of ours can cost it.
 */
export const approveSignal = defineSignal('approve');
export const phaseSignal = defineSignal<[string]>('phase');

const { noop } = proxyActivities<{ noop(): Promise<void> }>({ startToCloseTimeout: '1 minute' });

/** Started, then waits for one signal: the shape of a request waiting for its approval. */
export async function waitsForApproval(): Promise<void> {
  let approved = false;
  setHandler(approveSignal, () => void (approved = true));
  await condition(() => approved);
}

/** Runs `count` activities that do nothing, one after the other. */
export async function runsActivities(count: number): Promise<void> {
  for (let i = 0; i < count; i++) await noop();
}

/** A request's part in a build, and nothing else: approved, it runs its build as a child and hears its phases. */
export async function requestShaped(): Promise<void> {
  let approved = false;
  const phases: string[] = [];
  setHandler(approveSignal, () => void (approved = true));
  setHandler(phaseSignal, (phase) => void phases.push(phase));
  await condition(() => approved);
  await executeChild(buildShaped, { workflowId: `${workflowInfo().workflowId}-build` });
}

/**
 * A build's Temporal traffic, and nothing else: vmBuild's seven activities (clone, snippet upload, configure, start,
 * guest IP, NetBird peer, VPN grant) with its two phase signals to the request in between. The quick calls vmBuild runs
 * as local activities, its search attributes and the clone slots are left out: the floor is lower than ours.
 */
export async function buildShaped(): Promise<void> {
  const request = getExternalWorkflowHandle(workflowInfo().parent!.workflowId);
  await noop();
  await request.signal(phaseSignal, 'Provisioning');
  for (let i = 0; i < 3; i++) await noop();
  await request.signal(phaseSignal, 'Configuring');
  for (let i = 0; i < 3; i++) await noop();
}
