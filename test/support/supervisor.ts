import { spawn, type ChildProcess } from 'node:child_process';
import { openSync } from 'node:fs';
import { resolve } from 'node:path';

const root = resolve(__dirname, '..', '..');

export interface Supervised {
  /** How often the process was started. */
  starts(): number;
  /** The running process's pid (for CPU accounting), undefined between a kill and its replacement. */
  pid(): number | undefined;
  /** SIGKILL; the supervisor starts a new one after its pause, as systemd's Restart=always (or compose's restart) would. */
  killAndRestart(): Promise<void>;
  /** Ends it for good. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/**
 * Keeps one pveflow process (`src/api/main.ts`, `src/worker.ts`) alive with the given environment, its output appended
 * to `logFile`: a process that exits (killed, or gave up because Temporal was down at its start) is replaced after a
 * short pause.
 */
export function supervise(entry: string, env: Record<string, string | undefined>, logFile: string): Supervised {
  let child: ChildProcess | undefined;
  let starts = 0;
  let stopping = false;
  const launch = () => {
    starts++;
    const out = openSync(logFile, 'a');
    const c = spawn(process.execPath, ['--import', 'tsx', entry], { cwd: root, env, stdio: ['ignore', out, out] });
    child = c;
    c.once('exit', () => {
      if (stopping || child !== c) return;
      setTimeout(() => {
        if (!stopping && child === c) launch();
      }, 500);
    });
  };
  const end = async (c: ChildProcess | undefined, signal: NodeJS.Signals) => {
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((ok) => c.once('exit', ok));
    c.kill(signal);
    await exited;
  };
  launch();
  return {
    starts: () => starts,
    pid: () => child?.pid,
    async killAndRestart() {
      const c = child;
      child = undefined; // the exit handler of the killed one must not launch a second
      await end(c, 'SIGKILL');
      launch();
    },
    async stop(signal = 'SIGKILL') {
      stopping = true;
      await end(child, signal);
    },
  };
}
