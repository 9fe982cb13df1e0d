import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { bounds, checked, flagSchemas, wholeNumber } from '../checks';
import { usageError } from '../cliError';
import type { Flag, FlagValues } from '../options';

/** The flags of a submission's image and choices (requests new, classes new). */
export const choiceFlags = ['image', 'disk-gib', 'bridge', 'vlan', 'package', 'runcmd', 'write-file', 'cloud-config'] as const satisfies readonly Flag[];

const read = (flag: string, path: string) => {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw usageError(`--${flag}: cannot read ${path}: ${(err as Error).message}`);
  }
};

/**
 * Lays the choice flags over the body. The syntax of each value is checked here (exit 2, nothing sent); what the
 * configuration allows (the image for the org, the bridge, the counts) is the API's to judge.
 */
export function setChoices(body: Record<string, unknown>, f: FlagValues): void {
  if (f.image !== undefined) body.image = checked('image', f.image, flagSchemas.image);
  if (f['disk-gib'] !== undefined) body.disk_gib = wholeNumber('disk-gib', f['disk-gib'], bounds.diskGiB, 'GiB of boot disk');
  if (f.vlan !== undefined && f.bridge === undefined) throw usageError('--vlan needs --bridge: a VLAN is a tag on a bridge');
  if (f.bridge !== undefined) {
    body.network = { bridge: checked('bridge', f.bridge, flagSchemas.bridge), ...(f.vlan !== undefined ? { vlan: wholeNumber('vlan', f.vlan, bounds.vlan, 'VLAN tag') } : {}) };
  }
  const cloudInit: Record<string, unknown> = typeof body.cloud_init === 'object' && body.cloud_init !== null ? { ...(body.cloud_init as Record<string, unknown>) } : {};
  if (f.package) cloudInit.packages = f.package.map((p) => checked('package', p, flagSchemas.package));
  if (f.runcmd) {
    if (f.runcmd.some((c) => !c.trim())) throw usageError('--runcmd needs a shell command line');
    cloudInit.runcmd = f.runcmd;
  }
  if (f['write-file']) {
    cloudInit.write_files = f['write-file'].map((spec) => {
      const at = spec.indexOf('=');
      if (at <= 0 || at === spec.length - 1) throw usageError(`--write-file ${spec}: give GUEST_PATH=LOCAL_FILE (e.g. /etc/motd=./motd)`);
      return { path: spec.slice(0, at), content: read('write-file', spec.slice(at + 1)) };
    });
  }
  if (f['cloud-config'] !== undefined) {
    let doc: unknown;
    try {
      doc = parse(read('cloud-config', f['cloud-config']));
    } catch (err) {
      throw usageError(`--cloud-config ${f['cloud-config']} is not YAML: ${(err as Error).message}`);
    }
    if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw usageError(`--cloud-config ${f['cloud-config']} must hold a cloud-config mapping (key: value lines)`);
    cloudInit.cloud_config = doc;
  }
  if (Object.keys(cloudInit).length) body.cloud_init = cloudInit;
}
