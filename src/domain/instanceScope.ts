/**
 * Several pveflow instances may share one Temporal namespace (docs/operations.md, "Two instances on one cluster"):
 * each has its own task queue, pool and VMID range. What one instance lists, counts, syncs or schedules is scoped by
 * its task queue, so it never touches the other's requests.
 */

/** The visibility clause that keeps a query to one instance's workflows. */
export function taskQueueClause(taskQueue: string): string {
  // Task queue names come from our own configuration, but a quote in one would break (or widen) the query.
  if (/["'\\\n\r]/.test(taskQueue)) throw new Error(`refusing a task queue name with quotes or backslashes: ${JSON.stringify(taskQueue)}`);
  return `TaskQueue = '${taskQueue}'`;
}
