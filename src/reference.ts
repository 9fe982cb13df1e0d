import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

/**
 * The real systems' contracts (PVE API schema, NetBird OpenAPI spec) are data the project must not contain: they
 * are read from `PVEFLOW_REFERENCE_DIR`, else from `../shared/reference` beside the repository.
 */
export type ReferenceFile = 'pve-api-schema.json' | 'netbird-openapi.yml' | 'proxmox-behaviour.md';

const repoRoot = resolve(__dirname, '..');

export function referenceDir(): string {
  return process.env.PVEFLOW_REFERENCE_DIR ?? join(repoRoot, '..', 'shared', 'reference');
}

/** The path of a reference file, or undefined when it is absent (the caller decides how loud to be). */
export function referencePath(file: ReferenceFile): string | undefined {
  const p = join(referenceDir(), file);
  return existsSync(p) ? p : undefined;
}

const warned = new Set<string>();

/** Used by the simulators: without the contract they still run, but say loudly that nothing is validated. */
export function warnReferenceMissing(what: string, file: ReferenceFile): void {
  if (warned.has(file)) return;
  warned.add(file);
  process.emitWarning(`${file} not found in ${referenceDir()}: the ${what} runs WITHOUT schema validation. ` + `Set PVEFLOW_REFERENCE_DIR to the folder holding the reference data.`, { code: 'PVEFLOW_NO_REFERENCE' });
}
