import { ConfigError, loadConfig } from '../config';
import { createActivityDeps } from '../worker';
import { formatFindings, runDoctor } from './runDoctor';

/**
 * `tsx src/doctor/cli.ts` (`pveflow doctor`): checks the configured cluster, nodes and NetBird from the same
 * environment the worker reads, prints each finding with what to fix, and exits 1 when any check failed.
 */
async function main(): Promise<number> {
  const config = loadConfig();
  if (!config.PVE_ENDPOINT) {
    console.error('PVE_ENDPOINT is not set: without it pveflow runs its simulated cluster, and there is nothing to check.');
    return 2;
  }
  const deps = createActivityDeps(config);
  try {
    const findings = await runDoctor({
      ...deps,
      token: { id: config.PVE_TOKEN_ID!, secret: config.PVE_TOKEN_SECRET! },
    });
    console.log(formatFindings(findings));
    return findings.every((f) => f.ok) ? 0 : 1;
  } finally {
    await Promise.allSettled([deps.pve.close(), deps.netbird.close()]);
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(err instanceof ConfigError ? err.message : err);
    process.exit(1);
  },
);
