import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { WorldFile } from '../test/support/worldProcess';

/**
 * The simulated world (Proxmox, NetBird, the nodes' sshd for SFTP) as its own process with zero latency: during a
 * bench both ends of every HTTP and SSH call would otherwise be charged to pveflow, and its CPU can be read apart.
 */
export interface WorldProcess {
  /** What pveflow needs to reach it (PVE_ENDPOINT, NETBIRD_API_URL, SSH_*…). */
  env: Record<string, string>;
  pid: number | undefined;
  stop(): Promise<void>;
}

export async function startWorldProcess(dir: string): Promise<WorldProcess> {
  mkdirSync(dir, { recursive: true });
  const world = spawn(process.execPath, ['--import', 'tsx', 'test/support/worldProcess.ts', dir, 'zero'], { cwd: resolve(__dirname, '..'), stdio: 'ignore' });
  const exited = new Promise<void>((done) => world.once('exit', () => done()));
  const stop = async () => {
    world.kill('SIGTERM');
    await Promise.race([exited, sleep(10_000)]);
  };
  for (let i = 0; i < 240; i++) {
    if (existsSync(join(dir, 'world.json'))) {
      const file = JSON.parse(readFileSync(join(dir, 'world.json'), 'utf8')) as WorldFile;
      return { env: file.env, pid: world.pid, stop };
    }
    if (world.exitCode !== null) break;
    await sleep(250);
  }
  await stop();
  throw new Error('the simulated world did not start');
}
