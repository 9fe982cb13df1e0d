import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
import { CLOUD_INIT_LOG } from '../src/domain/guestLog';
import { deviceNames } from '../src/domain/deviceNames';
import { realGuestPrerequisites } from '../src/simulators/pve';
import { SNIPPETS_DIR } from '../src/simulators/world';
import { guestImage, runnableOrSkip, startRealGuestWorld, type RealGuestVm, type RealGuestWorld } from './support/realGuest';

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
let realWorld: RealGuestWorld | undefined;
let vm: RealGuestVm;
let netbird: NetbirdClient | undefined;

before(async () => {
  if (reasonNotRunnable) return;
  dir = mkdtempSync(join(tmpdir(), 'guest-logs-guest-'));
  const image = guestImage({ netbird: true });
  // The management address answers every connection by closing it: nothing there speaks NetBird.
  realWorld = await startRealGuestWorld(dir, image, [{ ...NOWHERE, command: 'true' }]);
  vm = realWorld.vm({ node: NODE, vmid: VMID, bootWaitMs: BOOT_WAIT_MS });
  const { env } = realWorld.world;
  netbird = new NetbirdClient({ baseUrl: env.NETBIRD_API_URL, token: env.NETBIRD_TOKEN, ca: readFileSync(env.NETBIRD_CA_FILE, 'utf8') });
});

after(async () => {
  await realWorld?.stop();
  await netbird?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('a guest whose NetBird is out of reach fails waitForPeer with its cloud-init log’s netbird error, the setup key redacted', { timeout: 30 * 60_000 }, async (t) => {
  if (!runnableOrSkip(t, reasonNotRunnable, 'real guests cannot run on this machine')) return;
  const { pve } = realWorld!;
  const names = deviceNames(SERIAL, 'lab');
  const managementUrl = `http://${NOWHERE.address}:${NOWHERE.port}`;
  const passwordHashes = { user: 'arrow', userHash: await sha512Crypt('correct horse battery'), rootHash: await sha512Crypt('staple battery horse') };
  const userData = renderUserData({ hostname: names.hostname, sshKeys: [], netbird: { managementUrl, setupKey: SETUP_KEY }, passwordHashes, choices: {} });
  assert.ok(userData.includes(SETUP_KEY), 'the snippet carries the setup key, as pveflow’s does');

  await vm.cloneWithSnippet(TEMPLATE, names.hostname, names.snippetFile, userData);
  const started = Date.now();
  const guest = await vm.start();

  // Until the guest's log holds netbird's answer (or cloud-init gave up): only then is there an error to show.
  // (`netbird up` gives up after its login backoff, about 30 s; cloud-init then finishes, its final stage failed.)
  await vm.waitFor('cloud-init to finish', async () => /Cloud-init v\. \S+ finished/.test((await pve.readGuestFile(NODE, VMID, CLOUD_INIT_LOG)).content));
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
