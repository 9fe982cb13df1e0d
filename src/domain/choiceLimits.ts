import type { ChoiceRefusal } from './choiceRules';
import type { CloudInitChoices } from './cloudInitChoices';

/**
 * The configured bounds of a request's choices (CLOUD_INIT_MAX_*, REQUEST_MAX_DISK_GIB), within the hard ones of the
 * request schema: what one VM's first boot may be asked to do, and how large it may grow.
 */
export interface ChoiceLimits {
  packages: number;
  runcmd: number;
  writeFiles: number;
  /** The request's packages, commands, files and fragment together, as JSON. */
  bytes: number;
  maxDiskGiB: number;
}

export const defaultChoiceLimits: ChoiceLimits = { packages: 30, runcmd: 30, writeFiles: 10, bytes: 32 * 1024, maxDiskGiB: 1024 };

/** Why the choices exceed the limits (fields are the wire's; rule choice-limit), or nothing. */
export function choiceLimitRefusals(limits: ChoiceLimits, r: { diskGiB?: number; cloudInit?: CloudInitChoices }): ChoiceRefusal[] {
  const issues: ChoiceRefusal[] = [];
  const rule = 'choice-limit';
  if (r.diskGiB !== undefined && r.diskGiB > limits.maxDiskGiB) issues.push({ field: 'disk_gib', reason: `at most ${limits.maxDiskGiB} GiB (REQUEST_MAX_DISK_GIB)`, rule });
  const c = r.cloudInit;
  if (!c) return issues;
  const count = (field: string, n: number | undefined, max: number, env: string) => {
    if ((n ?? 0) > max) issues.push({ field: `cloud_init.${field}`, reason: `at most ${max} (${env}), ${n} given`, rule });
  };
  count('packages', c.packages?.length, limits.packages, 'CLOUD_INIT_MAX_PACKAGES');
  count('runcmd', c.runcmd?.length, limits.runcmd, 'CLOUD_INIT_MAX_RUNCMD');
  count('write_files', c.write_files?.length, limits.writeFiles, 'CLOUD_INIT_MAX_WRITE_FILES');
  const bytes = Buffer.byteLength(JSON.stringify(c), 'utf8');
  if (bytes > limits.bytes) issues.push({ field: 'cloud_init', reason: `${bytes} bytes of packages, commands, files and cloud-config; at most ${limits.bytes} (CLOUD_INIT_MAX_BYTES)`, rule });
  return issues;
}
