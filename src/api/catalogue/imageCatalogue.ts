import { imageCatalogue, missingImages, type ConfiguredImage, type Image, type PoolTemplate } from '../../domain/imageCatalogue';
import type { CatalogueEntry } from '../../domain/catalogueRules';
import type { ApiContext } from '../http/context';
import { latestSyncResult } from '../reads/latestSync';
import { catalogueState } from './catalogueStore';

export interface CurrentCatalogue {
  /** When the sync that saw the pool's templates ran. */
  at: string;
  images: Image[];
  /** Catalogue images whose template the pool does not hold (as of `at`). */
  missing: ConfiguredImage[];
  /** The pool's templates as the sync saw them. */
  templates: PoolTemplate[];
  /** The catalogue's entries (PVEFLOW_IMAGES as seeded, imports, operators' changes). */
  entries: CatalogueEntry[];
}

/**
 * The catalogue as of the newest completed cluster sync: the catalogue workflow's entries (domain/catalogueRules)
 * matched with the pool's templates; undefined before the first sync.
 */
export async function currentCatalogue(ctx: Pick<ApiContext, 'client' | 'taskQueue' | 'temporal' | 'choices'>): Promise<CurrentCatalogue | undefined> {
  // The sync first: before it there is no catalogue to offer, and a request naming no image is not held up.
  const sync = await latestSyncResult(ctx);
  if (!sync) return undefined;
  const state = await catalogueState(ctx);
  const templates = sync.templates ?? [];
  const configured = state.curated || state.entries.length > 0 ? state.entries : undefined;
  return { at: sync.at, images: imageCatalogue(templates, configured, state.curated), missing: missingImages(templates, state.entries), templates, entries: state.entries };
}
