import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { ActivityDeps, ActivitySettings } from '../src/activities/deps';
import { peerActivities } from '../src/activities/netbird/peer';
import { guestAgentActivities } from '../src/activities/proxmox/guestAgent';
import type { NetbirdClient } from '../src/clients/netbird';
import { PveApiError, type GuestFile, type GuestInterfaces, type PveClient } from '../src/clients/pve';
import { guestLogTail, redactGuestLog } from '../src/domain/guestLog';

// A failure's message lands in Temporal's history and the console: the guest log it quotes must carry no secret.
describe('guest log redaction', () => {
  const key = '3F1C2B9A-7D4E-4C1B-9A2F-0E5D6C7B8A91';

  test('a setup key on the netbird command line is gone, however it is written', () => {
    for (const line of [
      `+ netbird up --management-url https://nb.example --setup-key ${key} --hostname vm1`,
      `+ netbird up --setup-key=${key}`,
      `+ netbird up --setup-key '${key}'`,
      `+ netbird up --setup-key not-a-uuid-but-secret`,
      `+ netbird up -k ${key}`,
      `NB_SETUP_KEY=${key}`,
    ]) {
      const out = redactGuestLog(line);
      assert.ok(!out.includes(key) && !out.includes(key.toLowerCase()) && !out.includes('not-a-uuid-but-secret'), out);
      assert.match(out, /\[redacted\]/);
    }
    assert.match(redactGuestLog(`+ netbird up --setup-key ${key} --hostname vm1`), /--hostname vm1$/, 'what follows the key stays');
  });

  test('password hashes and key=value secrets are gone; ordinary lines stay as they were', () => {
    const hash = '$6$rounds=4096$saltsalt$Xq1Y0bZc2e3f4g5h6i7j8k9l0m';
    assert.ok(!redactGuestLog(`passwd: ${hash}`).includes('saltsalt'));
    assert.ok(!redactGuestLog(`chpasswd: consultant:${hash}`).includes('Xq1Y0bZ'));
    assert.equal(redactGuestLog('password: hunter2'), 'password: [redacted]');
    const plain = 'Cloud-init v. 24.1 finished at Mon, 07 Dec 2026 09:00:00 +0000. Datasource DataSourceNoCloud.  Up 41.2 seconds';
    assert.equal(redactGuestLog(plain), plain);
  });

  test('the tail is the last lines, capped in size, redacted before it is cut', () => {
    const lines = Array.from({ length: 100 }, (_, i) => `line ${i}`);
    const tail = guestLogTail(`${lines.join('\n')}\n\n`, 40);
    assert.equal(tail.split('\n').length, 40);
    assert.equal(tail.split('\n')[0], 'line 60');
    assert.equal(tail.split('\n').at(-1), 'line 99');

    const long = guestLogTail(`${'x'.repeat(10_000)}\nnetbird up --setup-key ${key}`, 40, 100);
    assert.equal(long.length, 100);
    assert.ok(long.startsWith('…') && long.endsWith('--setup-key [redacted]'), long);
    assert.ok(!long.includes(key.slice(-12)), 'no piece of a cut-through key');
  });
});

/** The waits' failures, against a Proxmox and a NetBird the test answers itself: what they say about the guest. */
describe('a wait that times out tells what the guest said', () => {
  const key = '0b5c8e2a-1f3d-4e6a-9b7c-2d4e6f8a0b1c';
  const log = ['Cloud-init v. 24.1 running modules:final', `+ netbird up --management-url http://10.0.2.100:33073 --setup-key ${key} --hostname vm-1`, 'Error: login failed: connection refused', ''].join('\n');
  const settings = { guestIpWaitSeconds: 1, peerWaitSeconds: 1, pollMinMs: 50, pollMaxMs: 100, netbirdManagementUrl: 'http://10.0.2.100:33073' } as ActivitySettings;
  const ref = { serial: 'VM-UT001', node: 'pve1', vmid: 101 };
  const agentDown = () => new PveApiError({ method: 'GET', path: '/nodes/pve1/qemu/101/agent/network-get-interfaces', status: 500, reason: 'QEMU guest agent is not running' });

  async function failure(run: () => Promise<unknown>): Promise<ApplicationFailure> {
    const err = await run().then(
      () => assert.fail('the wait succeeded'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ApplicationFailure, String(err));
    return err;
  }

  test('waitForGuestIp, the agent up without an IPv4: its interfaces and the log’s tail, redacted', async () => {
    let reads = 0;
    const pve = {
      guestNetworkInterfaces: async (): Promise<GuestInterfaces> => ({ result: [{ name: 'lo', 'ip-addresses': [{ 'ip-address': '127.0.0.1', 'ip-address-type': 'ipv4', prefix: 8 }] }, { name: 'eth0' }] }),
      readGuestFile: async (_n: string, _v: number, file: string): Promise<GuestFile> => (reads++, assert.equal(file, '/var/log/cloud-init-output.log'), { content: log }),
    } as unknown as PveClient;
    const { waitForGuestIp } = guestAgentActivities({ pve, settings } as unknown as ActivityDeps);
    const err = await failure(() => new MockActivityEnvironment().run(waitForGuestIp, ref));
    assert.equal(reads, 1);
    assert.match(err.message, /reported no IPv4 within 1 s.*lo: 127\.0\.0\.1\/8; eth0: none/);
    assert.match(err.message, /cloud-init log \(\/var\/log\/cloud-init-output\.log\) ends:\n.*--setup-key \[redacted\] --hostname vm-1\nError: login failed: connection refused$/s);
    assert.ok(!JSON.stringify([err.message, err.details]).includes(key), 'no setup key in the failure');
  });

  test('waitForGuestIp, the agent never up: says so, and reads nothing', async () => {
    const pve = {
      guestNetworkInterfaces: async () => Promise.reject(agentDown()),
      readGuestFile: async () => assert.fail('nothing can be read from a guest whose agent never answered'),
    } as unknown as PveClient;
    const { waitForGuestIp } = guestAgentActivities({ pve, settings } as unknown as ActivityDeps);
    const err = await failure(() => new MockActivityEnvironment().run(waitForGuestIp, ref));
    assert.match(err.message, /last: QEMU guest agent is not running\).*The guest agent never answered/s);
  });

  test('waitForPeer: the log’s tail when it can be read; why not when it cannot', async () => {
    const netbird = { peersNamed: async () => [] } as unknown as NetbirdClient;
    const readable = { readGuestFile: async (): Promise<GuestFile> => ({ content: log }) } as unknown as PveClient;
    const vm = { node: 'pve1', vmid: 101 };
    let err = await failure(() => new MockActivityEnvironment().run(peerActivities({ netbird, settings, pve: readable }).waitForPeer, { serial: 'VM-UT001', name: 'lab', vm }));
    assert.match(err.message, /did not join NetBird within 1 s \(NETBIRD_PEER_WAIT_S\)\. Check that the VM reaches http:\/\/10\.0\.2\.100:33073\. The guest's cloud-init log .* ends:\n/);
    assert.match(err.message, /Error: login failed: connection refused$/);
    assert.ok(!JSON.stringify([err.message, err.details]).includes(key));

    const refused = {
      readGuestFile: async () => Promise.reject(new PveApiError({ method: 'GET', path: '/x', status: 403, reason: 'Permission check failed (/vms/101, VM.GuestAgent.FileRead|VM.GuestAgent.Unrestricted)' })),
    } as unknown as PveClient;
    err = await failure(() => new MockActivityEnvironment().run(peerActivities({ netbird, settings, pve: refused }).waitForPeer, { serial: 'VM-UT001', name: 'lab', vm }));
    assert.match(err.message, /could not be read through the guest agent: Permission check failed \(\/vms\/101, VM\.GuestAgent\.FileRead\|VM\.GuestAgent\.Unrestricted\)\.$/);

    // Without the VM (a caller from before this field), the hint it always gave.
    err = await failure(() => new MockActivityEnvironment().run(peerActivities({ netbird, settings, pve: readable }).waitForPeer, { serial: 'VM-UT001', name: 'lab' }));
    assert.match(err.message, /Check the VM's cloud-init log/);
  });
});
