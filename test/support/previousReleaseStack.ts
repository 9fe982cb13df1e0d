import { createRequire } from 'node:module';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

/**
 * Run by the upgrade test inside the previous release's checkout, with that checkout's tsx: the previous release's
 * embedded stack (what its `npm start` runs), plus the one thing `npm start` does not offer: the test switches the
 * simulated Proxmox's faults in this process, where the world lives, to hold a build mid-clone or a day-2 operation
 * mid-task while the release is replaced. It imports only the previous release's own code (PREVIOUS_RELEASE_ROOT).
 *
 * Protocol: lines on stdout that start with PROTOCOL are for the test (JSON); everything else is the stack's own log.
 * stdin takes one JSON command a line: {"id": n, "pveFaults": {...}} | {"id": n, "clearPveFaults": true}. SIGTERM, or
 * stdin closing (the test is gone), stops the stack the way `npm start` stops it.
 */
const PROTOCOL = '@@previous-release ';
const root = process.env.PREVIOUS_RELEASE_ROOT;
if (!root) throw new Error('PREVIOUS_RELEASE_ROOT is not set');

interface PreviousStack {
  apiUrl: string;
  temporal: { address: string; namespace: string; taskQueue: string };
  world?: { pve: { faults: { set(f: unknown): void; clear(kind?: string): void } } };
  stop(): Promise<void>;
}

const emit = (message: object) => process.stdout.write(`${PROTOCOL}${JSON.stringify(message)}\n`);

async function main(): Promise<void> {
  // As its npm start does: the SDK installs no signal handler of its own, so the stop runs in the stack's order.
  // Resolved from the previous release's own tree: its SDK, its code.
  const fromPrevious = createRequire(join(root!, 'package.json'));
  const { Runtime } = fromPrevious('@temporalio/worker') as { Runtime: { install(o: object): void } };
  Runtime.install({ shutdownSignals: [] });
  const { startEmbeddedStack } = fromPrevious('./src/embedded/stack') as { startEmbeddedStack(o: { env: NodeJS.ProcessEnv }): Promise<PreviousStack> };

  let stopping: Promise<void> | undefined;
  let stack: PreviousStack | undefined;
  const stop = (why: string) =>
    (stopping ??= (async () => {
      console.log(`[previous release] ${why}: stopping`);
      await stack?.stop();
      emit({ stopped: why });
      process.exit(0);
    })());
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  stack = await startEmbeddedStack({ env: process.env });
  const world = stack.world;
  createInterface({ input: process.stdin })
    .on('line', (line) => {
      let id: unknown;
      try {
        const command = JSON.parse(line) as { id: unknown; pveFaults?: unknown; clearPveFaults?: boolean };
        id = command.id;
        if (!world) throw new Error('no simulated world: real endpoints are configured');
        if (command.pveFaults) world.pve.faults.set(command.pveFaults);
        if (command.clearPveFaults) world.pve.faults.clear();
        emit({ id, ok: true });
      } catch (err) {
        emit({ id, error: (err as Error).message });
      }
    })
    .on('close', () => void stop('stdin closed'));
  emit({ ready: { apiUrl: stack.apiUrl, temporal: stack.temporal } });
}

main().catch((err) => {
  console.error('[previous release] could not start:', err);
  process.exit(1);
});
