import { ApplicationFailure, condition, getExternalWorkflowHandle, setHandler } from '@temporalio/workflow';
import { cloneSlotGrantedSignal, releaseCloneSlotSignal, releasePlacementSignal, requestCloneSlotSignal, type CloneSlotGrant, type CloneSlotRequest } from '../contracts/cloneSlotsMessages';
import { cloneSlotsWorkflowId } from '../contracts/workflowIds';
import { ErrorType } from '../errors';

/** After this long unreleased, the coordinator presumes the build gone (terminated) and frees its slot. */
const SLOT_TTL_MS = 30 * 60_000;

/**
 * A build's side of the clone-slots coordinator (src/workflows/cloneSlots.ts), as in Temporal's mutex sample: it
 * signals its ask, waits in plain sight for the coordinator's grant signal, and signals its releases. The holder is
 * the build's workflow id, so the coordinator signals the grant straight back to it.
 */
export function cloneSlotsOf(holder: string, taskQueue: string) {
  const coordinatorId = cloneSlotsWorkflowId(taskQueue);
  const coordinator = getExternalWorkflowHandle(coordinatorId);
  let grant: CloneSlotGrant | undefined;
  let asked = false;
  let slotHeld = false;
  setHandler(cloneSlotGrantedSignal, (g) => {
    grant = g;
  });
  return {
    /**
     * Asks for a place and a clone slot and waits until the coordinator grants both; the place is where to build.
     * The ask's own delivery is not awaited: the build waits for the grant or for the ask to fail (no coordinator),
     * whichever comes first, so that a grant that arrives with the ask's delivery costs no workflow task of its own.
     */
    async acquire(plan: Omit<CloneSlotRequest, 'holder' | 'ttlMs'>): Promise<CloneSlotGrant> {
      const { offers, need, running, keys, limits } = plan;
      let undelivered: unknown;
      asked = true;
      void coordinator.signal(requestCloneSlotSignal, { holder, offers, need, running, keys, limits, ttlMs: SLOT_TTL_MS }).catch((err: unknown) => {
        undelivered = err ?? 'not delivered';
      });
      await condition(() => grant !== undefined || undelivered !== undefined);
      if (grant === undefined) {
        throw ApplicationFailure.create({
          type: ErrorType.CoordinatorMissing,
          nonRetryable: true,
          message:
            `build ${holder} could not ask workflow ${coordinatorId} for a clone slot (${undelivered instanceof Error ? undelivered.message : String(undelivered)}): ` +
            `every pveflow worker starts it on task queue ${taskQueue} when it starts. Start or restart a worker for that task queue, then rebuild.`,
        });
      }
      slotHeld = true;
      return grant;
    },
    /**
     * The clone has ended: its slot goes to the next clone; the place stays reserved until the cluster counts `vmid`.
     * Sent with the build's next step rather than before it: the next clone waits on this signal, not the build. A
     * coordinator gone meanwhile frees nothing.
     */
    releaseSlot(vmid: number): void {
      if (!slotHeld) return;
      slotHeld = false;
      void coordinator.signal(releaseCloneSlotSignal, { holder, vmid }).catch(() => undefined);
    },
    /**
     * The build needs its place no longer: its VM runs, so the cluster counts it from here on; or the build is over
     * (failed or cancelled): frees its slot, its place and any ask still waiting. Sent with the build's next step,
     * not awaited: nothing the build does depends on it, and a coordinator gone has nothing to free.
     */
    releasePlace(): void {
      if (!asked) return;
      asked = false;
      slotHeld = false;
      void coordinator.signal(releasePlacementSignal, { holder }).catch(() => undefined);
    },
  };
}
