import { ConfigError, loadConfig } from '../config';
import { createActivityDeps } from '../worker';
import { doctorEnvironment, simulatedWorldHint } from './environment';
import { formatFindings, runDoctor } from './runDoctor';

/**
 * `tsx src/doctor/cli.ts` (`pveflow doctor`): checks the configured cluster, nodes and NetBird from the same
 * environment the worker reads (without PVE_ENDPOINT: the embedded default's simulated world, see environment.ts),
 * prints each finding with what to fix, and exits 1 when any check failed.
 */
async function main(): Promise<number> {
  let checked: ReturnType<typeof doctorEnvironment>;
  try {
    checked = doctorEnvironment(process.env);
  } catch (err) {
    console.error((err as Error).message);
    return 2;
  }
  const config = loadConfig(checked.env);
  const deps = createActivityDeps(config);
  if (checked.worldFile) console.error(simulatedWorldHint(checked.worldFile));
  try {
    const findings = await runDoctor({
      ...deps,
      token: { id: config.PVE_TOKEN_ID!, secret: config.PVE_TOKEN_SECRET! },
    });
    console.log(formatFindings(findings));
    if (checked.worldFile && findings.some((f) => !f.ok)) console.error(simulatedWorldHint(checked.worldFile, true));
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
