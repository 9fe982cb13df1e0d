import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createActivities } from '../../src/activities';
import { PveClient } from '../../src/clients/pve';
import { loadConfig } from '../../src/config';
import { startSimulatedWorld, type SimulatedWorld, type WorldOptions } from '../../src/simulators/world';
import { closeActivityDeps, createActivityDeps } from '../../src/worker';

/** A simulated world for activity tests, the activities wired to it, and Proxmox as root sees it. */
export interface ActivityWorld {
  world: SimulatedWorld;
  /** The root token's client: the test looks at (and arranges) the cluster with it. */
  root: PveClient;
  acts: ReturnType<typeof createActivities>;
  /** Closes the activities' clients and the root client, stops the world and removes its folder. */
  stop(): Promise<void>;
}

/**
 * The world in a folder of its own (`pveflow-<name>-…`), configured as the worker is from the world's settings, with
 * the activities' task polls shortened (20–200 ms) so that a test waits on the simulator's timings, not on the polls.
 */
export async function startActivityWorld(name: string, options: Omit<WorldOptions, 'dir'>): Promise<ActivityWorld> {
  const dir = mkdtempSync(join(tmpdir(), `pveflow-${name}-`));
  const world = await startSimulatedWorld({ dir, ...options }).catch((err: unknown) => {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });
  const root = new PveClient({ endpoint: world.env.PVE_ENDPOINT, tokenId: world.rootToken.id, tokenSecret: world.rootToken.secret, ca: readFileSync(world.env.PVE_CA_FILE), timeoutMs: 10_000 });
  const deps = createActivityDeps(loadConfig(world.env));
  deps.settings.pollMinMs = 20;
  deps.settings.pollMaxMs = 200;
  return {
    world,
    root,
    acts: createActivities(deps),
    async stop() {
      await closeActivityDeps(deps);
      await root.close();
      await world.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
