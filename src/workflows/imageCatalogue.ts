import { allHandlersFinished, ApplicationFailure, condition, continueAsNew, setHandler, workflowInfo } from '@temporalio/workflow';
import { addImage, deleteImage, emptyCatalogue, retireImage, seedCatalogue, updateImage, type CatalogueChange, type CatalogueState } from '../domain/catalogueRules';
import { addImageUpdate, catalogueQuery, deleteImageUpdate, retireImageUpdate, seedImagesUpdate, updateImageUpdate } from '../contracts/imageCatalogueMessages';

export interface ImageCatalogueInput {
  /** Carried over by continue-as-new. */
  state?: CatalogueState;
}

/** Keeps a run's history short: a new run after this many changes (or when Temporal suggests it). */
const CHANGES_PER_RUN = 500;

/**
 * The deployment's image catalogue: which images a request may name, what they need and who may use them. One
 * long-lived workflow per task queue, like the address pool: Temporal is where pveflow keeps its state, so the
 * catalogue survives any restart with nothing else to back up, and every change is one Update in its history (who
 * changed what, when). Validators ask the rules (domain/catalogueRules) before anything is written.
 */
export async function imageCatalogue(input: ImageCatalogueInput = {}): Promise<void> {
  let state: CatalogueState = input.state ?? emptyCatalogue;
  let changes = 0;

  /** A refused change as the failure the API maps: its type tells 404 from 409 from 400. */
  const refuse = (change: CatalogueChange): never => {
    if (change.ok) throw new Error('not a refusal');
    const r = change.refusal;
    throw ApplicationFailure.create({ type: r.notFound ? 'ImageNotFound' : r.conflict ? 'ImageConflict' : 'ImageRefused', message: r.reason, nonRetryable: true, details: [r] });
  };
  const now = () => new Date().toISOString();
  const apply = (change: CatalogueChange) => {
    if (!change.ok) return refuse(change);
    state = change.state;
    changes++;
    return change.entry!;
  };

  setHandler(seedImagesUpdate, ({ images }) => {
    const next = seedCatalogue(state, images, now());
    if (next !== state) changes++;
    state = next;
    return state;
  });
  // The validator rejects a refused change before it reaches history; the handler applies the same rule again.
  const check = (change: CatalogueChange) => {
    if (!change.ok) refuse(change);
  };
  setHandler(addImageUpdate, (entry) => apply(addImage(state, entry)), { validator: (entry) => check(addImage(state, entry)) });
  setHandler(updateImageUpdate, ({ name, patch }) => apply(updateImage(state, name, patch)), { validator: ({ name, patch }) => check(updateImage(state, name, patch)) });
  setHandler(retireImageUpdate, ({ name }) => apply(retireImage(state, name)), { validator: ({ name }) => check(retireImage(state, name)) });
  setHandler(deleteImageUpdate, ({ name, usedBy }) => apply(deleteImage(state, name, usedBy)), { validator: ({ name, usedBy }) => check(deleteImage(state, name, usedBy)) });
  setHandler(catalogueQuery, () => state);

  await condition(() => changes >= CHANGES_PER_RUN || workflowInfo().continueAsNewSuggested);
  await condition(allHandlersFinished);
  await continueAsNew<typeof imageCatalogue>({ state });
}
