import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { ActivitySettings } from '../src/activities/deps';
import { peerActivities } from '../src/activities/netbird/peer';
import { renderUserData } from '../src/activities/snippets/cloudInit';
import { sha512Crypt } from '../src/activities/snippets/guestCredentials';
import { NetbirdClient } from '../src/clients/netbird';
import { PveClient } from '../src/clients/pve';
import { SftpClient } from '../src/clients/sftp';
import { CLOUD_INIT_LOG } from '../src/domain/guestLog';
import { deviceNames } from '../src/domain/deviceNames';
import { simulatorTimings } from '../src/embedded/simulatorTimings';
import { realGuestPrerequisites, type RealGuestInfo } from '../src/simulators/pve';
import { SNIPPETS_DIR, startSimulatedWorld, type SimulatedWorld } from '../src/simulators/world';

/**
 * Issue 26, "bad input and faults", on a real guest: its snippet points `netbird up` at a management server that
 * closes every connection (a guestfwd to a command that exits at once). The guest boots and gets an address, never
 * joins, and waitForPeer fails with the tail of the guest's own cloud-init log, read through the agent: the netbird
 * error is in it, the setup key is not.
 */
const NODE = 'pve1';
const TEMPLATE = 9000;
const VMID = 311;
const BOOT_WAIT_MS = 12 * 60_000;
const SERIAL = 'VM-GLR01';
const SETUP_KEY = 'A1B2C3D4-E5F6-4A7B-8C9D-0E1F2A3B4C5D';
const NOWHERE = { address: '10.0.2.101', port: 33073 };

const reasonNotRunnable = realGuestPrerequisites();
let dir = '';
let world: SimulatedWorld | undefined;
let pve: PveClient;
let netbird: NetbirdClient | undefined;
let guest: RealGuestInfo | undefined;

before(async () => {
  if (reasonNotRunnable) return;
  dir = mkdtempSync(join(tmpdir(), 'guest-logs-guest-'));
  const build = spawnSync('bash', ['scripts/build-guest-image.sh'], { encoding: 'utf8', timeout: 20 * 60_000 });
  if (build.status !== 0) throw new Error(`scripts/build-guest-image.sh failed (${build.status}): ${build.stderr.slice(-3000)}`);
  const image = build.stdout.trim().split('\n').at(-1)!;
  const manifest = JSON.parse(readFileSync(join(image, 'manifest.json'), 'utf8')) as { netbirdClient?: { present: boolean } };
  if (!manifest.netbirdClient?.present) throw new Error(`the guest image ${image} has no NetBird client: run bash scripts/install-netbird.sh, then this test again`);
  // The management address answers every connection by closing it: nothing there speaks NetBird.
  world = await startSimulatedWorld({ dir: join(dir, 'world'), timing: simulatorTimings.fast, realGuests: { image, guestForwards: [{ ...NOWHERE, command: 'true' }] } });
  const ca = readFileSync(world.env.PVE_CA_FILE, 'utf8');
  pve = new PveClient({ endpoint: world.env.PVE_ENDPOINT, tokenId: world.env.PVE_TOKEN_ID, tokenSecret: world.env.PVE_TOKEN_SECRET, ca, timeoutMs: 60_000 });
  netbird = new NetbirdClient({ baseUrl: world.env.NETBIRD_API_URL, token: world.env.NETBIRD_TOKEN, ca: readFileSync(world.env.NETBIRD_CA_FILE, 'utf8') });
});

after(async () => {
  await world?.stop();
  await pve?.close();
  await netbird?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('a guest whose NetBird is out of reach fails waitForPeer with its cloud-init log’s netbird error, the setup key redacted', { timeout: 30 * 60_000 }, async (t) => {
  if (reasonNotRunnable) {
    if (process.env.CI) assert.fail(`real guests cannot run on this machine: ${reasonNotRunnable}`);
    t.skip(`real guests cannot run on this machine: ${reasonNotRunnable}`);
    return;
  }
  const w = world!;
  const names = deviceNames(SERIAL, 'lab');
  const managementUrl = `http://${NOWHERE.address}:${NOWHERE.port}`;
  const passwordHashes = { user: 'arrow', userHash: await sha512Crypt('correct horse battery'), rootHash: await sha512Crypt('staple battery horse') };
  const userData = renderUserData({ hostname: names.hostname, sshKeys: [], netbird: { managementUrl, setupKey: SETUP_KEY }, passwordHashes, choices: {} });
  assert.ok(userData.includes(SETUP_KEY), 'the snippet carries the setup key, as pveflow’s does');

  await task(await pve.cloneVm(NODE, TEMPLATE, { newid: VMID, name: names.hostname, pool: 'pveflow' }));
  const [host, port] = w.env.SSH_NODES.split(',')
    .find((n) => n.startsWith(`${NODE}=`))!
    .slice(NODE.length + 1)
    .split(':');
  const fingerprint = w.env.SSH_HOST_FINGERPRINTS.split(',')
    .find((n) => n.startsWith(`${NODE}=`))!
    .slice(NODE.length + 1);
  const sftp = new SftpClient({ host: host!, port: Number(port), username: w.env.SSH_USER, privateKey: readFileSync(w.env.SSH_PRIVATE_KEY_FILE, 'utf8'), hostKeyFingerprint: fingerprint });
  await sftp.upload(`${SNIPPETS_DIR}/${names.snippetFile}`, userData);
  await sftp.close();
  await task(await pve.updateVmConfig(NODE, VMID, { cicustom: `user=local:snippets/${names.snippetFile}`, ipconfig0: 'ip=dhcp' }));
  const started = Date.now();
  await task(await pve.vmPower(NODE, VMID, 'start'));
  guest = w.pve.realGuest(VMID);
  assert.ok(guest, 'the started VM runs a real guest');

  // Until the guest's log holds netbird's answer (or cloud-init gave up): only then is there an error to show.
  // (`netbird up` gives up after its login backoff, about 30 s; cloud-init then finishes, its final stage failed.)
  await waitFor('cloud-init to finish', async () => /Cloud-init v\. \S+ finished/.test((await pve.readGuestFile(NODE, VMID, CLOUD_INIT_LOG)).content));
  t.diagnostic(`netbird up failed ${Math.round((Date.now() - started) / 1000)} s after start (${guest.accel})`);

  const settings: ActivitySettings = {
    pool: 'pveflow',
    vmidRange: { min: 100, max: 999 },
    templateVmid: TEMPLATE,
    bridge: 'vmbr0',
    fullCloneDefault: false,
    snippetsStorage: 'local',
    snippetsDir: SNIPPETS_DIR,
    netbirdManagementUrl: managementUrl,
    setupKeyTtlSeconds: 86_400,
    missingConsultant: 'report',
    guestIpWaitSeconds: 5,
    peerWaitSeconds: 2,
    pollMinMs: 200,
    pollMaxMs: 500,
  };
  const { waitForPeer } = peerActivities({ netbird: netbird!, pve, settings });
  const failure = await new MockActivityEnvironment().run(waitForPeer, { serial: SERIAL, name: 'lab', vm: { node: NODE, vmid: VMID } }).then(
    () => assert.fail('the guest joined NetBird'),
    (err: unknown) => err,
  );
  assert.ok(failure instanceof ApplicationFailure, String(failure));
  const message = failure.message;
  t.diagnostic(message);
  assert.match(message, /did not join NetBird within 2 s \(NETBIRD_PEER_WAIT_S\)/);
  assert.match(message, /cloud-init log \(\/var\/log\/cloud-init-output\.log\) ends:\n/);
  const tail = message.slice(message.indexOf('ends:\n') + 6);
  // NetBird's own words for a management server it could not log in to.
  assert.match(tail, /^Error: daemon up failed: login .*$/m, 'the netbird error line is quoted');
  assert.ok(tail.split('\n').length <= 40 && tail.length <= 4096, 'the tail is bounded');
  for (const shown of [message, JSON.stringify(failure.details)]) {
    assert.ok(!shown.includes(SETUP_KEY) && !shown.toLowerCase().includes(SETUP_KEY.toLowerCase()), 'no setup key in clear');
    assert.ok(!shown.includes(passwordHashes.userHash) && !shown.includes(passwordHashes.rootHash), 'no password hash');
  }
});

async function task(upid: string | null): Promise<void> {
  if (!upid) return;
  await waitFor(`task ${upid}`, async () => (await pve.taskStatus(upid)).status === 'stopped', 15 * 60_000, 500);
  const status = await pve.taskStatus(upid);
  if (status.exitstatus !== 'OK') assert.fail(`task ${upid} ended ${status.exitstatus}: ${(await pve.taskLogTail(upid)).join('\n')}`);
}

/** Polls `check` until true; past the deadline it fails quoting the end of the guest's serial console. */
async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = BOOT_WAIT_MS, everyMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) {
      const log = guest && existsSync(guest.serialLog) ? readFileSync(guest.serialLog, 'utf8').split('\n').slice(-40).join('\n') : '(no serial console log)';
      assert.fail(`waited ${Math.round(timeoutMs / 1000)} s for ${what}; the guest's serial console ends:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
