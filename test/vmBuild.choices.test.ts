import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { deviceNames } from '../src/domain/deviceNames';
import { netbirdEnrollmentOf } from '../src/simulators/world';
import { parsePropertyString } from '../src/activities/proxmox/vmSettings';
import { useWorkflowHarness } from './support/workflowHarness';
import { requestDriver } from './support/requestDriver';

/**
 * A request with choices built on the simulators, through a real sshd: the snippet on the node carries pveflow's
 * user-data with the choices merged in, the boot disk is grown to the size asked for, and net0 is on the bridge and
 * VLAN asked for.
 */

describe('a request with choices builds with them', () => {
  const harness = useWorkflowHarness();

  test('the snippet holds the merged user-data, the disk is grown and net0 is on the chosen bridge and VLAN', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const serial = 'VM-CH001';
    const world = await harness.h.world({}, { PVE_NETWORKS: 'vmbr1:100-199' });
    const taskQueue = `choices-${serial}`;
    const request = await harness.h.request(serial, {
      name: 'web',
      templateVmid: 9000,
      diskGiB: 20,
      network: { bridge: 'vmbr1', vlan: 120 },
      cloudInit: {
        packages: ['nginx'],
        runcmd: [['systemctl', 'enable', '--now', 'nginx']],
        write_files: [{ path: '/var/www/html/index.html', content: '<h1>lab</h1>\n' }],
        cloud_config: { timezone: 'Europe/Paris' },
      },
    });
    const record = await harness.h.withWorker(world, taskQueue, async () => {
      const driven = await requestDriver(harness.h.env.client, taskQueue).startApproved(request);
      return driven.waitForStatus(['Fulfilled', 'Failed'], { timeoutMs: 120_000 });
    });
    assert.equal(record.status, 'Fulfilled', record.build?.error);

    const vm = world.pve.dump().vms.find((v) => v.vmid === record.device.vmid);
    assert.ok(vm, 'the VM exists');
    const net0 = Object.fromEntries(parsePropertyString(String(vm.config.net0)));
    assert.equal(net0.bridge, 'vmbr1');
    assert.equal(net0.tag, '120');
    assert.ok(net0.virtio, "the clone's NIC model and MAC are kept");
    assert.match(String(vm.config.scsi0), /size=20G/, 'the boot disk grown from 4G');
    assert.ok(record.build?.log.some((l) => l.message === 'growing the boot disk to 20 GiB'));

    const text = readFileSync(join(harness.h.sshd.dir, deviceNames(serial, 'web').snippetFile), 'utf8');
    const doc = parse(text) as Record<string, any>;
    assert.deepEqual(doc.packages, ['qemu-guest-agent', 'curl', 'ca-certificates', 'nginx']);
    assert.deepEqual(doc.runcmd[0], ['systemctl', 'enable', '--now', 'qemu-guest-agent']);
    assert.deepEqual(doc.runcmd.at(-1), ['systemctl', 'enable', '--now', 'nginx'], "the request's command runs after pveflow's");
    assert.deepEqual(doc.write_files, [{ path: '/var/www/html/index.html', content: '<h1>lab</h1>\n' }]);
    assert.equal(doc.timezone, 'Europe/Paris');
    assert.equal(doc.users.find((u: unknown) => typeof u === 'object').name, 'arrow');
    assert.ok(netbirdEnrollmentOf(text), 'the enrolment is in the merged user-data');
    assert.ok(record.device.vpnIp, 'and the guest joined NetBird with it');
  });
});
