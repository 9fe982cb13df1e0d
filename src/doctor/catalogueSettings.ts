import { requestChoicesFromConfig } from '../requestChoices';
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

/** An image as `GET /api/images` lists it: the name and the template the newest cluster sync found for it. */
export interface ListedImage {
  name: string;
  template_vmid: number;
  /** Its template on each node, when it has one per node. */
  templates?: Array<{ node: string; vmid: number }>;
}

/**
 * The catalogue the API keeps (PVEFLOW_IMAGES as seeded, the imports, operators' changes) added to what the
 * configuration names: an image named in both is checked as configured (its template by name or VMID), every other
 * one by the VMID the API lists.
 */
export function withListedImages(settings: Pick<PveCheckSettings, 'images' | 'networks'>, listed: readonly ListedImage[]): Pick<PveCheckSettings, 'images' | 'networks'> {
  const configured = settings.images ?? [];
  const names = new Set(configured.map((i) => i.name));
  const added = listed.filter((i) => !names.has(i.name)).map((i) => ({ name: i.name, template: i.template_vmid, ...(i.templates ? { perNode: i.templates.map((t) => t.vmid) } : {}) }));
  return { ...settings, images: [...configured, ...added] };
}
