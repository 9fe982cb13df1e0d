import { fragmentKeySchemas, writeFileRefusal, type CloudInitChoices } from '../../domain/cloudInitChoices';

/** pveflow's own cloud-config, as cloudInit.ts builds it: the keys it must own for the build to succeed. */
export interface OwnUserData {
  packages: string[];
  runcmd: Array<string | string[]>;
  [key: string]: unknown;
}

/**
 * pveflow's user-data with a request's choices merged in, pveflow's keys winning:
 * - every key pveflow writes keeps pveflow's value, and only the allowlist's keys (`fragmentKeySchemas`) of the
 *   fragment are kept (the intake refuses the others; this is the guarantee for anything that got past it);
 * - packages: pveflow's first (the guest agent, curl, CA certificates), then the request's not already there;
 * - runcmd: pveflow's first (guest agent on, NetBird enrolled), then the request's, so that a failing or hostile
 *   command of the request runs only once the build's own steps have;
 * - write_files: the request's, only those the allowlist of places lets through (`writeFileRefusal`).
 */
export function mergeUserData(own: OwnUserData, choices: CloudInitChoices | undefined): Record<string, unknown> {
  if (!choices) return own;
  const fragment = Object.fromEntries(Object.entries(choices.cloud_config ?? {}).filter(([key]) => Object.hasOwn(fragmentKeySchemas, key) && !Object.hasOwn(own, key)));
  const packages = [...own.packages, ...(choices.packages ?? []).filter((p) => !own.packages.includes(p))];
  const runcmd = [...own.runcmd, ...(choices.runcmd ?? [])];
  const files = (choices.write_files ?? []).filter((f) => !writeFileRefusal(f.path));
  return { ...own, ...fragment, packages, runcmd, ...(files.length ? { write_files: files } : {}) };
}
