import { resolve } from 'node:path';
import { ConfigError } from '../config';
import { embeddedWorldAccessFile, NETBIRD_ACCESS_KEYS, PVE_ACCESS_KEYS, readWorldAccessFile } from '../simulators/inspection';

/**
 * The environment the doctor checks. With PVE_ENDPOINT set, the real cluster it names; without it, the simulated
 * world of the embedded default under DATA_DIR, from the access file `npm start` writes (inspection.ts), filling
 * in what the environment leaves unset exactly as the embedded stack does: Proxmox and the nodes' SFTP, and NetBird
 * unless NETBIRD_API_URL points at a real one.
 */
export function doctorEnvironment(env: NodeJS.ProcessEnv): { env: NodeJS.ProcessEnv; worldFile?: string } {
  if (env.PVE_ENDPOINT) return { env };
  const file = embeddedWorldAccessFile(resolve(env.DATA_DIR || '.data'));
  const access = readWorldAccessFile(file);
  if (!access) {
    throw new ConfigError(`PVE_ENDPOINT is not set and there is no simulated world at ${file}: set PVE_*, SSH_* and NETBIRD_* to check a real cluster, or start the embedded default (npm start) with this DATA_DIR first`);
  }
  const pick = (keys: readonly (keyof typeof access)[]) => Object.fromEntries(keys.filter((k) => access[k] !== undefined).map((k) => [k, access[k]]));
  return { env: { ...env, ...pick(PVE_ACCESS_KEYS), ...(env.NETBIRD_API_URL ? {} : pick(NETBIRD_ACCESS_KEYS)) }, worldFile: file };
}

/** Said before the findings; when a check failed, with the usual reason: nothing serves the world right now. */
export function simulatedWorldHint(worldFile: string, failed = false): string {
  return `checking the embedded default's simulated world, from ${worldFile}${failed ? ': it answers only while `npm start` runs with this DATA_DIR' : ''}`;
}
