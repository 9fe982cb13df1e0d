import { requestChoicesFromConfig } from '../api/intake/requestChoices';
import type { Config } from '../config';
import type { PveCheckSettings } from './pveChecks';

/**
 * What the catalogue checks read from the configuration: the configured images (PVEFLOW_IMAGES or its file) and the
 * networks a request may use, parsed exactly as the API parses them. Images imported through the API live in the
 * catalogue's workflow; a caller that has them adds them to `images`.
 */
export function doctorCatalogueSettings(config: Config): Pick<PveCheckSettings, 'images' | 'networks'> {
  const choices = requestChoicesFromConfig(config);
  return { ...(choices.images ? { images: choices.images } : {}), networks: choices.networks };
}
