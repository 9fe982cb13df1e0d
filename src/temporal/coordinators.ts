import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import { apiKeyRegistryWorkflowId, cloneSlotsWorkflowId, imageCatalogueWorkflowId, ipPoolWorkflowId } from '../contracts/workflowIds';

/**
 * Starts the deployment's coordinator workflows (clone slots and placement, the static address pool, the API keys
 * issued at run time) unless they run already: every worker does it at start-up, before it polls, so that a build
 * always finds them. Their runs continue as new by themselves; nothing else starts them.
 */
export async function ensureCoordinators(client: Client, taskQueue: string): Promise<void> {
  for (const [workflowType, workflowId] of [
    ['cloneSlots', cloneSlotsWorkflowId(taskQueue)],
    ['ipPool', ipPoolWorkflowId(taskQueue)],
    // Seeded with PVEFLOW_IMAGES by the API (catalogue/catalogueStore.ts); started here so an import finds it.
    ['imageCatalogue', imageCatalogueWorkflowId(taskQueue)],
    ['apiKeyRegistry', apiKeyRegistryWorkflowId(taskQueue)],
  ] as const) {
    try {
      await client.workflow.start(workflowType, { workflowId, taskQueue, args: [{}], workflowIdConflictPolicy: 'USE_EXISTING' });
    } catch (err) {
      // A server without conflict policies answers "already started" instead: the running one is just as good.
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
  }
}
