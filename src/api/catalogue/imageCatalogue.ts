import { imageCatalogue, missingImages, type ConfiguredImage, type Image, type PoolTemplate } from '../../domain/imageCatalogue';
import type { ApiContext } from '../http/context';
import { latestSyncResult } from '../reads/latestSync';

export interface CurrentCatalogue {
  /** When the sync that saw the pool's templates ran. */
  at: string;
  images: Image[];
  /** Configured images whose template the pool does not hold (as of `at`). */
  missing: ConfiguredImage[];
  /** The pool's templates as the sync saw them. */
  templates: PoolTemplate[];
}

/** The catalogue as of the newest completed cluster sync, refined by the configuration; undefined before the first sync. */
export async function currentCatalogue(ctx: Pick<ApiContext, 'client' | 'taskQueue' | 'temporal' | 'choices'>): Promise<CurrentCatalogue | undefined> {
  const sync = await latestSyncResult(ctx);
  if (!sync) return undefined;
  const templates = sync.templates ?? [];
  return { at: sync.at, images: imageCatalogue(templates, ctx.choices.images), missing: missingImages(templates, ctx.choices.images), templates };
}
