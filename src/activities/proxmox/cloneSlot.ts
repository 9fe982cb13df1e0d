import { ApplicationFailure, Context } from '@temporalio/activity';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { setTimeout as sleep } from 'node:timers/promises';
import { ErrorType } from '../../errors';
import { LocalCloneGate, type GateEntry } from './localCloneGate';
import { acquireCloneSlotUpdate, handOverCloneSlotUpdate, releaseCloneSlotSignal, type CloneSlotRequest } from '../../contracts/cloneSlotsMessages';
import { cloneSlotsWorkflowId } from '../../contracts/workflowIds';

export interface CloneLimits {
  /** Clones at once per node; 0: unlimited. */
  perNode: number;
  /** Clones at once per storage (per node for local storage, cluster-wide for shared storage); 0: unlimited. */
  perStorage: number;
}

export interface CloneLoad {
  node: string;
  /** The storages the clone allocates volumes on, and whether each is shared. */
  storages: Array<{ id: string; shared: boolean }>;
}

/** A slot held longer than the clone activity may run is abandoned (its build was cancelled while it waited). */
const SLOT_TTL_MS = 30 * 60_000;
const HEARTBEAT_EVERY_MS = 5_000;
/** Failed asks for a slot (Temporal unreachable) before the activity fails and Temporal retries it with backoff. */
const MAX_FAILED_ASKS = 10;

export function cloneSlotHolder(serial: string, vmid: number): string {
  return `clone:${serial}:${vmid}`;
}

/** The slot keys a clone takes and their limits; no keys when no limit is configured. */
export function cloneSlotKeys(load: CloneLoad, limits: CloneLimits): Pick<CloneSlotRequest, 'keys' | 'limits'> {
  const keyed: Array<[string, number]> = [];
  if (limits.perNode > 0) keyed.push([`node/${load.node}`, limits.perNode]);
  if (limits.perStorage > 0) {
    for (const s of load.storages) keyed.push([s.shared ? `storage/${s.id}` : `storage/${s.id}@${load.node}`, limits.perStorage]);
  }
  const unique = new Map(keyed);
  return { keys: [...unique.keys()], limits: Object.fromEntries(unique) };
}

/** A clone's ask as this process makes it: how long the slot lasts unreleased is this module's to say (SLOT_TTL_MS). */
type SlotRequest = Omit<CloneSlotRequest, 'ttlMs'>;

/**
 * Runs `clone` while holding a clone slot for its node and storages (see the cloneSlots workflow). Waits first for
 * room in this process (LocalCloneGate), then asks the workflow, unless the clone before it handed it its slot;
 * heartbeats while it waits, withdraws when the activity is cancelled, and releases (or hands over) once `clone` has
 * settled. A worker crash in between leaves the slot held until the retried activity (same holder) takes it back or
 * it expires.
 */
export async function withCloneSlot<T>(client: Client, request: SlotRequest, clone: () => Promise<T>): Promise<T> {
  if (request.keys.length === 0) return clone();
  const ctx = Context.current();
  const taskQueue = ctx.info.taskQueue;
  const beat = setInterval(() => ctx.heartbeat(), HEARTBEAT_EVERY_MS);
  let entry: GateEntry<SlotRequest>;
  try {
    // A retried clone may still hold its slot (its worker died holding it): queued in this process behind clones that
    // wait for that very slot, it would never get to release it. It asks the workflow at once, which finds its slot
    // by holder or queues it there.
    entry = ctx.info.attempt > 1 ? unqueued() : await localGate(client, taskQueue).enter(request.keys, request.limits, ctx.cancellationSignal, request);
  } catch (err) {
    clearInterval(beat);
    throw err;
  }
  /**
   * Gives the slot back. When this process admits another clone in this one's place, the release and that clone's
   * ask go to the slots workflow as one Update, settled in one workflow task where a Signal and an Update took two;
   * the workflow still serves first come, first served, and a clone it does not grant asks as usual.
   */
  const releasing = async () => {
    const [next, ...others] = entry.leaveHandingOver();
    for (const other of others) other.hand(false);
    if (!next) return releaseCloneSlot(client, request.holder);
    try {
      next.hand(await handOverCloneSlot(client, taskQueue, request.holder, next.request));
    } catch {
      // Whether it landed is unknown: the next clone asks (a slot it was given is found by its holder), and this one
      // releases, which is harmless if the handover did land.
      next.hand(false);
      await releaseCloneSlot(client, request.holder);
    }
  };
  try {
    try {
      if (!(await entry.handed)) await acquireCloneSlot(client, taskQueue, request);
      else if (ctx.cancellationSignal.aborted) {
        await releaseCloneSlot(client, request.holder).catch(() => undefined);
        ctx.cancellationSignal.throwIfAborted();
      }
    } finally {
      clearInterval(beat);
    }
    let cloned: T;
    try {
      cloned = await clone();
    } catch (err) {
      // The clone's own failure is what matters; a retry asks for the slot again under the same holder anyway.
      await releasing().catch(() => undefined);
      throw err;
    }
    // A release that fails fails the activity: its retry finds the clone done and releases again. Swallowed, the slot
    // would stay held until it expires, and every clone behind it would wait.
    await releasing();
    return cloned;
  } finally {
    entry.leave();
  }
}

/** A place outside this process's queue: nothing handed to it, nothing to hand on. */
function unqueued(): GateEntry<SlotRequest> {
  return { handed: Promise.resolve(false), leave() {}, leaveHandingOver: () => [] };
}

async function handOverCloneSlot(client: Client, taskQueue: string, from: string, next: SlotRequest): Promise<boolean> {
  const handle = client.workflow.getHandle(cloneSlotsWorkflowId(taskQueue));
  const answer = await handle.executeUpdate(handOverCloneSlotUpdate, { args: [{ from, next: { ...next, ttlMs: SLOT_TTL_MS } }] });
  return answer.granted;
}

/** Asks the slots workflow until it grants `request` (or the activity is cancelled: the ask is then withdrawn). */
async function acquireCloneSlot(client: Client, taskQueue: string, request: SlotRequest): Promise<void> {
  const ctx = Context.current();
  const handle = client.workflow.getHandle(cloneSlotsWorkflowId(taskQueue));
  for (let failed = 0; ; ) {
    try {
      // Inside the try: a clone cancelled before it asked may still have a place in the queue (a handover put it
      // there), and the catch withdraws it.
      ctx.cancellationSignal.throwIfAborted();
      const answer = await Promise.race([handle.executeUpdate(acquireCloneSlotUpdate, { args: [{ ...request, ttlMs: SLOT_TTL_MS }] }), ctx.cancelled]);
      if (answer.granted) return;
    } catch (err) {
      if (ctx.cancellationSignal.aborted) {
        await releaseCloneSlot(client, request.holder).catch(() => undefined);
        throw err;
      }
      if (err instanceof WorkflowNotFoundError || isClosedWorkflow(err)) {
        await ensureCloneSlotsRunning(client, taskQueue);
        continue;
      }
      // The slots workflow rolled over to a new run mid-wait, or Temporal blinked: ask again shortly. Still
      // failing after a few tries, say so (the activity's retries take over, visible in Temporal UI).
      if (++failed >= MAX_FAILED_ASKS) {
        throw ApplicationFailure.create({
          type: ErrorType.PveTransient,
          message: `could not get a clone slot from workflow ${cloneSlotsWorkflowId(taskQueue)} on task queue ${taskQueue}: ${err instanceof Error ? err.message : String(err)}`,
        });
      }
      await sleep(500);
    }
  }
}

const gates = new WeakMap<Client, Map<string, LocalCloneGate<SlotRequest>>>();

/** One gate per client and task queue: what one worker process asks of one slots workflow. */
function localGate(client: Client, taskQueue: string): LocalCloneGate<SlotRequest> {
  let perQueue = gates.get(client);
  if (!perQueue) gates.set(client, (perQueue = new Map()));
  let gate = perQueue.get(taskQueue);
  if (!gate) perQueue.set(taskQueue, (gate = new LocalCloneGate()));
  return gate;
}

/** Frees `holder`'s slot (or withdraws its ask) on this worker's task queue; no slots workflow yet is fine. */
export async function releaseCloneSlot(client: Client, holder: string): Promise<void> {
  const handle = client.workflow.getHandle(cloneSlotsWorkflowId(Context.current().info.taskQueue));
  try {
    await handle.signal(releaseCloneSlotSignal, { holder });
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  }
}

async function ensureCloneSlotsRunning(client: Client, taskQueue: string): Promise<void> {
  try {
    await client.workflow.start('cloneSlots', { workflowId: cloneSlotsWorkflowId(taskQueue), taskQueue, args: [{}] });
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
  }
}

function isClosedWorkflow(err: unknown): boolean {
  const text = err instanceof Error ? `${err.message} ${(err.cause as Error | undefined)?.message ?? ''}` : '';
  return /workflow execution already completed|already completed|not found/i.test(text);
}
