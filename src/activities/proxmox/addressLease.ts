import { ApplicationFailure, Context } from '@temporalio/activity';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
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
 * The request's address from the ipPool workflow (the same one on every retry), as `ipconfig0`. The pool workflow is
 * started on first use, on this worker's task queue.
 */
export async function leaseStaticAddress(client: Client, pool: AddressPoolSpec, serial: string): Promise<StaticAddress> {
  const taskQueue = Context.current().info.taskQueue;
  const handle = client.workflow.getHandle(ipPoolWorkflowId(taskQueue));
  for (let attempt = 0; ; attempt++) {
    try {
      const { address } = await handle.executeUpdate(leaseAddressUpdate, { args: [{ serial, pool }] });
      return { address, ipconfig0: `ip=${address}/${pool.prefix},gw=${formatIpv4(pool.gateway)}` };
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) {
        throw ApplicationFailure.create({ type: err.cause.type ?? ErrorType.IpPoolExhausted, nonRetryable: true, message: err.cause.message });
      }
      // Not started yet, or between two runs (continue-as-new): start it (once) and ask again.
      if (attempt >= 3 || !(err instanceof WorkflowNotFoundError || /already completed|not found/i.test(String(err)))) throw err;
      try {
        await client.workflow.start('ipPool', { workflowId: ipPoolWorkflowId(taskQueue), taskQueue, args: [{}] });
      } catch (startErr) {
        if (!(startErr instanceof WorkflowExecutionAlreadyStartedError)) throw startErr;
      }
    }
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
