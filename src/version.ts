import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/**
 * The release this code is (package.json's `version`, semver): every process prints it in its startup line and
 * `/healthz` answers it, so an operator upgrading a deployment sees which processes already run the new release.
 * Read from the package's own manifest, found upwards from this file (src/ under tsx, dist/ when built).
 */
function readVersion(): string {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    try {
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (manifest.name === 'pveflow' && manifest.version) return manifest.version;
    } catch {
      // no manifest here: look one folder up
    }
    if (dirname(dir) === dir) return '0.0.0-unknown';
  }
}

export const pveflowVersion: string = readVersion();
