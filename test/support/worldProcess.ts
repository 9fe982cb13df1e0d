import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { simulatorTimings } from '../../src/embedded/simulatorTimings';
import type { ClusterSeed } from '../../src/simulators/pve/seed';
import { startSimulatedWorld } from '../../src/simulators/world';

/**
 * The simulated world as its own process, for the topology test: the cluster does not crash with pveflow, and
 * pveflow's processes reach it only through its endpoints, as they would a real one. Besides the default pool
 * `pveflow`, it has `SECOND_POOL` with its own template, for a second pveflow instance on the same cluster.
 * Writes `<dir>/world.json` (the endpoints, the automation token and a root token to inspect it) once it serves.
 *
 *   node --import tsx test/support/worldProcess.ts <dir> [zero]      (zero: no simulated latency, for benches)
 */
export const SECOND_POOL = { poolid: 'pveflow-b', templateVmid: 9100 };

export interface WorldFile {
  env: Record<string, string>;
  rootToken: { id: string; secret: string };
}

function withSecondPool(seed: ClusterSeed): ClusterSeed {
  const template = structuredClone(seed.vms.find((v) => v.vmid === 9000)!);
  template.vmid = SECOND_POOL.templateVmid;
  template.pool = SECOND_POOL.poolid;
  template.config = {
    ...template.config,
    name: 'debian-12-cloudinit-b',
    scsi0: `ceph:base-${SECOND_POOL.templateVmid}-disk-0,size=4G`,
    ide2: `ceph:vm-${SECOND_POOL.templateVmid}-cloudinit,media=cdrom`,
    net0: 'virtio=BC:24:11:91:00:01,bridge=vmbr0',
  };
  const poolAcls = seed.acls.filter((a) => a.path === '/pool/pveflow').map((a) => ({ ...a, path: `/pool/${SECOND_POOL.poolid}` }));
  return {
    ...seed,
    pools: [...seed.pools, { poolid: SECOND_POOL.poolid, comment: 'VMs of a second pveflow instance' }],
    vms: [...seed.vms, template],
    acls: [...seed.acls, ...poolAcls],
  };
}

async function main(): Promise<void> {
  const dir = process.argv[2];
  if (!dir) throw new Error('usage: worldProcess.ts <dir> [zero]');
  // Builds long enough that a kill lands in the middle of some, short enough for CI; or none at all for a bench.
  const timing = process.argv[3] === 'zero' ? simulatorTimings.zero : { ...simulatorTimings.fast, linkedCloneMs: 600, startMs: 300, agentStartMs: 800 };
  mkdirSync(dir, { recursive: true });
  const world = await startSimulatedWorld({ dir, timing, adjustSeed: withSecondPool });
  const file: WorldFile = { env: { ...world.env }, rootToken: world.rootToken };
  writeFileSync(join(dir, 'world.json'), JSON.stringify(file), { mode: 0o600 });
  const stop = () => void world.stop().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
