import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedStack, type EmbeddedStack, type EmbeddedStackOptions } from '../../src/embedded/stack';
import { requireTemporalBinary } from '../../src/temporal/binaries';
import { freePort } from './ports';

export interface TestStack {
  stack: EmbeddedStack;
  /** DATA_DIR: the dev server's SQLite file and log, the codec key, the simulators' files. */
  dataDir: string;
  stop(): Promise<void>;
}

/**
 * The embedded default (`npm start`'s stack) for a test: its own data directory, free ports, fast simulated timings,
 * its own task queue, and the API keys given (in clear, as API_KEYS). `env` adds or overrides settings; `options`
 * turns on what only a test asks for (real guests).
 */
export async function startTestStack(name: string, keys: readonly object[], env: Record<string, string> = {}, options: Pick<EmbeddedStackOptions, 'realGuests'> = {}): Promise<TestStack> {
  requireTemporalBinary('temporal');
  const dataDir = mkdtempSync(join(tmpdir(), `pveflow-${name}-`));
  const stack = await startEmbeddedStack({
    env: {
      PATH: process.env.PATH,
      DATA_DIR: dataDir,
      TEMPORAL_PORT: String(await freePort()),
      // The gateway binds a port of the system's choosing: one picked free here could be taken before it binds.
      TEMPORAL_UI_PORT: '0',
      TEMPORAL_TASK_QUEUE: `${name}-${process.pid}`,
      API_PORT: '0',
      SIM_PVE_PORT: '0',
      SIM_NETBIRD_PORT: '0',
      SIM_TIMING: 'fast',
      API_KEYS: JSON.stringify({ keys }),
      ...env,
    },
    ...options,
  }).catch((err) => {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  });
  return {
    stack,
    dataDir,
    async stop() {
      await stack.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
