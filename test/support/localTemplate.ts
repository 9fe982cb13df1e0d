import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { PveClient, waitForTask } from '../../src/clients/pve';
import type { SimulatedWorld } from '../../src/simulators/world';

/**
 * The operator's setup some builds must cope with: a template whose disk and cloud-init drive are on a node's
 * local-lvm (made with the root token, as an operator would by hand). Proxmox can clone it only on that node, and
 * every clone of it allocates on that one local storage.
 */
export async function createLocalTemplate(world: SimulatedWorld, node: string, vmid: number): Promise<void> {
  const root = new PveClient({
    endpoint: world.env.PVE_ENDPOINT,
    tokenId: world.rootToken.id,
    tokenSecret: world.rootToken.secret,
    ca: readFileSync(world.env.PVE_CA_FILE),
    timeoutMs: 10_000,
  });
  try {
    const upid = await root.call(
      'POST',
      `/nodes/${node}/qemu`,
      {
        vmid,
        name: 'debian-12-local',
        template: 1,
        pool: 'pveflow',
        agent: '1',
        ostype: 'l26',
        scsihw: 'virtio-scsi-pci',
        scsi0: `local-lvm:base-${vmid}-disk-0,size=4G`,
        ide2: 'local-lvm:cloudinit',
        boot: 'order=scsi0;ide2;net0',
        net0: 'virtio,bridge=vmbr0',
        serial0: 'socket',
      },
      z.string(),
    );
    const outcome = await waitForTask(root, upid, { minPollMs: 10, maxPollMs: 50 });
    assert.ok(outcome.ok, `creating the local template: ${outcome.exitstatus}`);
  } finally {
    await root.close();
  }
}
