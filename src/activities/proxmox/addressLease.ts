import { ApplicationFailure, Context } from '@temporalio/activity';
import { WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import type { AddressPoolSpec } from '../../domain/addressPool';
import { formatIpv4 } from '../../domain/ipv4';
import { ErrorType } from '../../errors';
import { leaseAddressUpdate, releaseAddressSignal } from '../../contracts/ipPoolMessages';
import { ipPoolWorkflowId } from '../../contracts/workflowIds';

/** A VM's static address, as `ipconfig0` takes it. */
export interface StaticAddress {
  address: string;
  ipconfig0: string;
}

/**
 * The request's address from the ipPool workflow (the same one on every retry), as `ipconfig0`. The pool runs from
 * the moment a worker starts (src/temporal/coordinators.ts), so the activity asks it directly, as a lease is an answer
 * the VM's configuration needs in the same step; an activity, not a signal from the build, because the lease is only
 * asked for when a pool is configured, which only the activities' settings know.
 */
export async function leaseStaticAddress(client: Client, pool: AddressPoolSpec, serial: string): Promise<StaticAddress> {
  const taskQueue = Context.current().info.taskQueue;
  const handle = client.workflow.getHandle(ipPoolWorkflowId(taskQueue));
  try {
    const { address } = await handle.executeUpdate(leaseAddressUpdate, { args: [{ serial, pool }] });
    return { address, ipconfig0: `ip=${address}/${pool.prefix},gw=${formatIpv4(pool.gateway)}` };
  } catch (err) {
    if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) {
      throw ApplicationFailure.create({ type: err.cause.type ?? ErrorType.IpPoolExhausted, nonRetryable: true, message: err.cause.message });
    }
    if (err instanceof WorkflowNotFoundError) {
      throw ApplicationFailure.create({
        type: ErrorType.CoordinatorMissing,
        nonRetryable: true,
        message:
          `no address pool workflow ${ipPoolWorkflowId(taskQueue)} for request ${serial}: every pveflow worker starts it on task queue ` +
          `${taskQueue} when it starts. Start or restart a worker for that task queue, then rebuild.`,
      });
    }
    // Temporal unreachable, or the pool between two runs: the activity's retries ask again.
    throw err;
  }
}

/** Gives the request's address back once its VM is gone. Nothing to give back (no pool yet) is fine. */
export async function releaseStaticAddress(client: Client, serial: string): Promise<void> {
  const handle = client.workflow.getHandle(ipPoolWorkflowId(Context.current().info.taskQueue));
  try {
    await handle.signal(releaseAddressSignal, { serial });
  } catch (err) {
    if (!(err instanceof WorkflowNotFoundError)) throw err;
  }
}
