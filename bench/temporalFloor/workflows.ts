import { CancellationScope, condition, defineSignal, defineUpdate, executeChild, getExternalWorkflowHandle, proxyActivities, proxyLocalActivities, setHandler, sleep, workflowInfo } from '@temporalio/workflow';

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

/**
 * One step of a workflow's shape as pveflow's histories show it (bench/floorShape.ts derives it): what the fair
 * floor replays with no-ops, in the same order, so that it asks Temporal for exactly what a pveflow lifecycle asks.
 */
export type FloorStep =
  | { kind: 'activity' }
  | { kind: 'local' }
  /** A timer; `fires`: it runs out (else the next awaited Update cancels it, as a condition's timeout is). */
  | { kind: 'timer'; fires: boolean }
  | { kind: 'signalParent' }
  /** A signal to the coordinator; `ask`: the coordinator answers it with a signal the workflow waits for. */
  | { kind: 'signalCoordinator'; ask: boolean }
  | { kind: 'awaitUpdate' }
  | { kind: 'child'; steps: FloorStep[] };

export const stepUpdate = defineUpdate<void>('step');
export const floorAskSignal = defineSignal<[{ holder: string; reply: boolean }]>('floorAsk');
export const floorGrantSignal = defineSignal('floorGrant');

const { noop: localNoop } = proxyLocalActivities<{ noop(): Promise<void> }>({ startToCloseTimeout: '1 minute' });

/** A workflow of the given shape, every step a no-op: a request, and (as its children) a build and a completion. */
export async function shapedFloor(steps: FloorStep[], coordinatorId: string): Promise<void> {
  const self = workflowInfo().workflowId;
  let updates = 0;
  let awaited = 0;
  let grants = 0;
  let asks = 0;
  let children = 0;
  let pendingTimers: CancellationScope[] = [];
  setHandler(stepUpdate, () => void updates++);
  setHandler(phaseSignal, () => undefined);
  setHandler(floorGrantSignal, () => void grants++);
  const coordinator = getExternalWorkflowHandle(coordinatorId);
  for (const step of steps) {
    switch (step.kind) {
      case 'activity':
        await noop();
        break;
      case 'local':
        await localNoop();
        break;
      case 'timer':
        if (step.fires) await sleep(1);
        else {
          const scope = new CancellationScope();
          void scope.run(() => sleep('1 day')).catch(() => undefined);
          pendingTimers.push(scope);
        }
        break;
      case 'awaitUpdate':
        await condition(() => updates > awaited);
        awaited++;
        for (const scope of pendingTimers) scope.cancel();
        pendingTimers = [];
        break;
      case 'signalParent':
        await getExternalWorkflowHandle(workflowInfo().parent!.workflowId).signal(phaseSignal, 'phase');
        break;
      case 'signalCoordinator':
        void coordinator.signal(floorAskSignal, { holder: self, reply: step.ask }).catch(() => undefined);
        if (step.ask) {
          asks++;
          await condition(() => grants >= asks);
        }
        break;
      case 'child':
        await executeChild(shapedFloor, { workflowId: `${self}-c${++children}`, args: [step.steps, coordinatorId] });
        break;
    }
  }
}

/** The clone-slots coordinator's part, with nothing decided: every ask is answered at once with a grant. */
export async function floorCoordinator(): Promise<void> {
  setHandler(floorAskSignal, ({ holder, reply }) => {
    if (reply)
      void getExternalWorkflowHandle(holder)
        .signal(floorGrantSignal)
        .catch(() => undefined);
  });
  await condition(() => false);
}
