import { defineQuery, defineUpdate } from '@temporalio/workflow';
import type { CatalogueEntry, CatalogueState, ImagePatch } from '../domain/catalogueRules';
import type { ConfiguredImage } from '../domain/imageCatalogue';

/**
 * The image catalogue workflow's messages (one per deployment: workflowIds.imageCatalogueWorkflowId). Every change is an
 * Update whose validator asks the catalogue's rules (domain/catalogueRules): a refused change is rejected before it is
 * written to history, with the rule's reason, and the API answers it 404 or 409.
 */

/** PVEFLOW_IMAGES, applied by each API process at its start (and by update-with-start, so the catalogue need not run yet). */
export const seedImagesUpdate = defineUpdate<CatalogueState, [{ images?: ConfiguredImage[] }]>('seedImages');
/** An import's template, added as the import's last step. */
export const addImageUpdate = defineUpdate<CatalogueEntry, [CatalogueEntry]>('addImage');
export const updateImageUpdate = defineUpdate<CatalogueEntry, [{ name: string; patch: ImagePatch }]>('updateImage');
export const retireImageUpdate = defineUpdate<CatalogueEntry, [{ name: string }]>('retireImage');
/** `usedBy`: the running requests holding a VM of it, as the API found them; any: refused. */
export const deleteImageUpdate = defineUpdate<CatalogueEntry, [{ name: string; usedBy: string[] }]>('deleteImage');
export const catalogueQuery = defineQuery<CatalogueState>('catalogue');
