import { readFileSync } from 'node:fs';
import { ConfigError, type Config } from './config';
import { defaultChoiceLimits, type ChoiceLimits } from './domain/choiceLimits';
import { imagesConfigSchema, type ConfiguredImage } from './domain/imageCatalogue';
import { parseAllowedNetworks, type AllowedNetwork } from './domain/networks';

/** What the intake checks a request's image and choices against, from the configuration. */
export interface RequestChoiceSettings {
  /** The configured images; undefined: every template of the pool is an image. */
  images?: ConfiguredImage[];
  /** The template a request that names no image is built from (PVE_TEMPLATE_VMID). */
  defaultTemplateVmid: number;
  networks: AllowedNetwork[];
  limits: ChoiceLimits;
  /** SYNC_INTERVAL_S: how long a caller waits, at most, for the first catalogue. */
  syncIntervalS: number;
}

export const defaultRequestChoiceSettings: RequestChoiceSettings = {
  defaultTemplateVmid: 9000,
  networks: [{ bridge: 'vmbr0' }],
  limits: defaultChoiceLimits,
  syncIntervalS: 60,
};

export function requestChoicesFromConfig(config: Config): RequestChoiceSettings {
  const networks = parseAllowedNetworks(config.PVE_NETWORKS ?? '');
  if ('error' in networks) throw new ConfigError(`PVE_NETWORKS: ${networks.error}`);
  // The default network is always allowed: a request that names none gets it.
  const own: AllowedNetwork = config.PVE_VLAN === undefined ? { bridge: config.PVE_BRIDGE } : { bridge: config.PVE_BRIDGE, vlans: { min: config.PVE_VLAN, max: config.PVE_VLAN } };
  return {
    ...imagesOf(config),
    defaultTemplateVmid: config.PVE_TEMPLATE_VMID,
    syncIntervalS: config.SYNC_INTERVAL_S,
    networks: [own, ...networks],
    limits: {
      packages: config.CLOUD_INIT_MAX_PACKAGES,
      runcmd: config.CLOUD_INIT_MAX_RUNCMD,
      writeFiles: config.CLOUD_INIT_MAX_WRITE_FILES,
      bytes: config.CLOUD_INIT_MAX_BYTES,
      maxDiskGiB: config.REQUEST_MAX_DISK_GIB,
    },
  };
}

function imagesOf(config: Config): { images?: ConfiguredImage[] } {
  if (config.PVEFLOW_IMAGES && config.PVEFLOW_IMAGES_FILE) throw new ConfigError('set PVEFLOW_IMAGES or PVEFLOW_IMAGES_FILE, not both');
  const source = config.PVEFLOW_IMAGES_FILE ? `PVEFLOW_IMAGES_FILE ${config.PVEFLOW_IMAGES_FILE}` : 'PVEFLOW_IMAGES';
  let text = config.PVEFLOW_IMAGES;
  if (config.PVEFLOW_IMAGES_FILE) {
    try {
      text = readFileSync(config.PVEFLOW_IMAGES_FILE, 'utf8');
    } catch (err) {
      throw new ConfigError(`${source}: cannot be read (${(err as Error).message})`);
    }
  }
  if (text === undefined) return {};
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${source} is not JSON: ${(err as Error).message}`);
  }
  const parsed = imagesConfigSchema.safeParse(json);
  if (!parsed.success) {
    const first = parsed.error.issues[0]!;
    throw new ConfigError(`${source}: ${first.path.join('.') || '(top)'}: ${first.message}`);
  }
  return { images: parsed.data.images };
}
