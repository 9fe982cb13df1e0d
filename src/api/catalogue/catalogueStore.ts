import { WithStartWorkflowOperation, WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { catalogueQuery, seedImagesUpdate } from '../../contracts/imageCatalogueMessages';
import { imageCatalogueWorkflowId } from '../../contracts/workflowIds';
import type { CatalogueRefusal, CatalogueState } from '../../domain/catalogueRules';
import type { ApiContext } from '../http/context';
import type { imageCatalogue } from '../../workflows/imageCatalogue';

type CatalogueCtx = Pick<ApiContext, 'client' | 'taskQueue' | 'temporal' | 'choices'>;

/** Seeded once per API process and client: PVEFLOW_IMAGES as this process read it. */
const seeded = new WeakMap<Client, Promise<CatalogueState>>();

/**
 * The catalogue as its workflow holds it. The first read of a process seeds it with PVEFLOW_IMAGES by
 * update-with-start, so the API never depends on a worker having started the catalogue; later reads are queries.
 */
export async function catalogueState(ctx: CatalogueCtx): Promise<CatalogueState> {
  const first = seeded.get(ctx.client);
  if (!first) {
    const seeding = seedCatalogue(ctx);
    seeded.set(ctx.client, seeding);
    try {
      return await seeding;
    } catch (err) {
      seeded.delete(ctx.client); // the next read tries again
      throw err;
    }
  }
  await first;
  try {
    return await ctx.temporal(() => catalogueHandle(ctx).query(catalogueQuery));
  } catch (err) {
    // Terminated by hand, or a new namespace: start it again from the seed.
    if (!(err instanceof WorkflowNotFoundError)) throw err;
    return seedCatalogue(ctx);
  }
}

function seedCatalogue(ctx: CatalogueCtx): Promise<CatalogueState> {
  const startWorkflowOperation = new WithStartWorkflowOperation<typeof imageCatalogue>('imageCatalogue', {
    workflowId: imageCatalogueWorkflowId(ctx.taskQueue),
    taskQueue: ctx.taskQueue,
    args: [{}],
    workflowIdConflictPolicy: 'USE_EXISTING',
    staticSummary: 'image catalogue',
  });
  return ctx.temporal(() => ctx.client.workflow.executeUpdateWithStart(seedImagesUpdate, { args: [{ ...(ctx.choices.images ? { images: ctx.choices.images } : {}) }], startWorkflowOperation }));
}

export function catalogueHandle(ctx: Pick<ApiContext, 'client' | 'taskQueue'>) {
  return ctx.client.workflow.getHandle<typeof imageCatalogue>(imageCatalogueWorkflowId(ctx.taskQueue));
}

/** A change the catalogue's rules refused (its Update's validator), or undefined for any other error. */
export function catalogueRefusal(err: unknown): CatalogueRefusal | undefined {
  if (!(err instanceof WorkflowUpdateFailedError)) return undefined;
  const cause = err.cause;
  if (!(cause instanceof ApplicationFailure)) return undefined;
  const r = cause.details?.[0] as CatalogueRefusal | undefined;
  return r ?? { field: 'name', reason: cause.message };
}
