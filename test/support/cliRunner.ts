import { spawn } from 'node:child_process';
import { resolve } from 'node:path';

/** The `pveflow` command line as a user runs it: the bin shim, in a child process, with only the environment given. */
const bin = resolve(__dirname, '..', '..', 'bin', 'pveflow');

export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI; `onStdout` sees output as it arrives (to act while a long command is still running). */
export function pveflow(args: string[], env: Record<string, string | undefined>, opts: { stdin?: string; onStdout?: (soFar: string) => void } = {}): Promise<Run> {
  return new Promise((ok, fail) => {
    // Only what the CLI needs from the environment: never this process's own keys.
    const child = spawn(process.execPath, [bin, ...args], { env: { PATH: process.env.PATH, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      opts.onStdout?.(stdout);
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    // A CLI that never ends must fail the test, not hang the suite.
    const guard = setTimeout(() => child.kill('SIGKILL'), 300_000);
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(guard);
      ok({ code, stdout, stderr });
    });
    child.stdin.end(opts.stdin ?? '');
  });
}
