import type { Client } from '@temporalio/client';
import type { RequestStatus } from '../contracts/types';
import { taskQueueClause } from '../domain/instanceScope';

/**
 * Open device requests per status, from Temporal visibility at scrape time. Temporal groups counts only by
 * ExecutionStatus, so it is one count per status a running request can be in — a dozen cheap queries whose cost
 * does not grow with the number of requests.
 */
const OPEN_STATUSES: readonly RequestStatus[] = ['Pending', 'Approved', 'Imaging', 'Provisioning', 'Configuring', 'Fulfilled', 'Failed', 'Cancelled', 'Cancelling', 'Completing'];

export function requestCountsFromVisibility(client: Client, taskQueue: string, timeoutMs = 5_000): () => Promise<Record<string, number>> {
  return async () => {
    const counts = Promise.all(
      OPEN_STATUSES.map(async (status) => {
        const { count } = await client.workflow.count(`WorkflowType = 'vmRequest' AND ExecutionStatus = 'Running' AND RequestStatus = '${status}' AND ${taskQueueClause(taskQueue)}`);
        return [status, count] as const;
      }),
    );
    const result = await Promise.race([counts, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`visibility counts took over ${timeoutMs} ms`)), timeoutMs).unref())]);
    return Object.fromEntries(result);
  };
}
