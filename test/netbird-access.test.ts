import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { ActivitySettings } from '../src/activities/deps';
import { accessActivities } from '../src/activities/netbird/access';
import { vpnObjectsOf } from '../src/domain/vpnObjects';
import { peerActivities, type VpnPeer } from '../src/activities/netbird/peer';
import { NetbirdClient } from '../src/clients/netbird';
import { deviceNames } from '../src/domain/deviceRequest';
import { ErrorType } from '../src/errors';
import {
  createNetbirdSimulator,
  loadNetbirdContract,
  type NetbirdExchange,
  type NetbirdListening,
  type NetbirdSimulator,
} from '../src/simulators/netbird';

/**
 * The NetBird activities against the simulated NetBird over HTTP: the access model they leave behind, judged from
 * the simulator's own state (who may reach whom), and how they behave when NetBird refuses, limits or goes down.
 */

const TOKEN = 'nbp_accessTestToken000000000000000000000';
const ALICE = 'alice@consultancy.example';
const BOB = 'Bob@Consultancy.example';
const NOBODY = 'dave@consultancy.example';

const settings: ActivitySettings = {
  pool: 'pveflow',
  vmidRange: { min: 100, max: 999 },
  templateVmid: 9000,
  bridge: 'vmbr0',
  fullCloneDefault: false,
  snippetsStorage: 'local',
  snippetsDir: '/var/lib/vz/snippets',
  netbirdManagementUrl: 'https://netbird.example.test',
  setupKeyTtlSeconds: 86_400,
  missingConsultant: 'report',
  guestIpWaitSeconds: 5,
  peerWaitSeconds: 2,
  pollMinMs: 10,
  pollMaxMs: 50,
};

const exchanges: NetbirdExchange[] = [];
let sim: NetbirdSimulator;
let server: NetbirdListening;
let netbird: NetbirdClient;
let alicePeer: string;
let bobPeer: string;
let outsiderPeer: string;
let serialCounter = 0;

function activities(overrides: Partial<ActivitySettings> = {}, client: NetbirdClient = netbird) {
  const deps = { netbird: client, settings: { ...settings, ...overrides } };
  return { ...accessActivities(deps), ...peerActivities(deps) };
}

/** What the build does before access is granted: device group, one-off key, the VM boots and joins, we find it. */
async function bootVm(): Promise<{ serial: string; name: string; peerId: string }> {
  const serial = `VM-${String(++serialCounter).padStart(5, '0')}`;
  const name = 'lab';
  const names = deviceNames(serial, name);
  const group = await netbird.createGroup({ name: names.deviceGroup, peers: [] });
  const key = await netbird.createSetupKey({ name: names.setupKey, type: 'one-off', expires_in: 86_400, auto_groups: [group.id], usage_limit: 1 });
  assert.ok(sim.enrollPeer({ setupKey: key.key, hostname: names.hostname }));
  const peer: { peerId: string } = await new MockActivityEnvironment().run(activities().waitForPeer, { serial, name });
  return { serial, name, peerId: peer.peerId };
}

/** Everything of one request in the simulator's state. */
function stateOf(serial: string, name: string) {
  const dump = sim.dump();
  const names = deviceNames(serial, name);
  const consultants = dump.groups.find((g) => g.name === names.consultantsGroup);
  return {
    peers: dump.peers.filter((p) => p.name === names.hostname),
    groups: dump.groups.filter((g) => g.name.includes(serial)),
    policies: dump.policies.filter((p) => p.name.includes(serial)),
    setupKeys: dump.setupKeys.filter((k) => k.name.includes(serial)),
    usersWithGroup: consultants ? dump.users.filter((u) => u.auto_groups.includes(consultants.id)).map((u) => u.email) : [],
  };
}

async function failure(promise: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ApplicationFailure, `expected an ApplicationFailure, got ${String(err)}`);
    return err;
  }
  assert.fail('the activity succeeded');
}

before(async () => {
  sim = createNetbirdSimulator({
    tokens: [TOKEN],
    users: [
      { email: 'owner@pveflow.example', name: 'Owner', role: 'owner' },
      { email: ALICE, name: 'Alice' },
      { email: BOB.toLowerCase(), name: 'Bob' },
      { email: 'eve@elsewhere.example', name: 'Eve' },
    ],
    onExchange: (e) => exchanges.push(e),
  });
  server = await sim.listen({});
  netbird = new NetbirdClient({ baseUrl: server.url, token: TOKEN, timeoutMs: 2_000, retry: { maxDelayMs: 2_000 } });
  // The consultants' own machines, registered by logging in; Eve is a NetBird user who is on no request.
  alicePeer = sim.enrollUserPeer({ email: ALICE, hostname: 'alice-laptop' }).id;
  bobPeer = sim.enrollUserPeer({ email: BOB, hostname: 'bob-laptop' }).id;
  outsiderPeer = sim.enrollUserPeer({ email: 'eve@elsewhere.example', hostname: 'eve-laptop' }).id;
});

beforeEach(() => sim.faults.reset());

after(async () => {
  await netbird.close();
  await server.close();
});

describe('grantVpnAccess', () => {
  test('leaves one peer, two groups, one one-way policy, and the consultants reaching the VM but never back', async () => {
    const { serial, name, peerId } = await bootVm();
    const result = await activities().grantVpnAccess({ serial, name, peerId, consultants: [ALICE, BOB] });
    assert.deepEqual(result, { missingConsultants: [], grantedConsultants: [ALICE, BOB] });

    const names = deviceNames(serial, name);
    const state = stateOf(serial, name);
    assert.deepEqual(state.peers.map((p) => p.id), [peerId]);
    assert.deepEqual(state.groups.map((g) => g.name).sort(), [names.consultantsGroup, names.deviceGroup]);
    const device = state.groups.find((g) => g.name === names.deviceGroup)!;
    const team = state.groups.find((g) => g.name === names.consultantsGroup)!;
    assert.deepEqual(device.peers.map((p) => p.id), [peerId], 'the device group holds the VM alone');
    assert.equal(state.policies.length, 1);
    const [rule, ...moreRules] = state.policies[0]!.rules;
    assert.deepEqual(moreRules, []);
    assert.deepEqual(
      [rule!.action, rule!.bidirectional, rule!.sources?.map((g) => g.id), rule!.destinations?.map((g) => g.id)],
      ['accept', false, [team.id], [device.id]],
    );
    assert.deepEqual(state.usersWithGroup.sort(), [ALICE, BOB.toLowerCase()]);
    // Groups propagation put the consultants' existing machines into their group.
    assert.deepEqual(team.peers.map((p) => p.id).sort(), [alicePeer, bobPeer].sort());

    // Who may reach whom, from the simulator's policies and groups.
    assert.ok(sim.reachableFrom(alicePeer).includes(peerId), "Alice's laptop reaches the VM");
    assert.ok(sim.reachableFrom(bobPeer).includes(peerId), "Bob's laptop reaches the VM");
    assert.ok(!sim.reachableFrom(outsiderPeer).includes(peerId), 'a NetBird user on no request does not');
    assert.deepEqual(sim.reachableFrom(peerId), [], 'the VM reaches nobody: not the consultants, not anyone');
  });

  test('run twice leaves the same state, and corrects a policy, a device group and a duplicate that drifted', async () => {
    const { serial, name, peerId } = await bootVm();
    const grant = activities().grantVpnAccess;
    const input = { serial, name, peerId, consultants: [ALICE] };
    await grant(input);
    const first = stateOf(serial, name);
    await grant(input);
    assert.deepEqual(stateOf(serial, name), first, 'a second grant changes nothing');

    // Drift: the policy made two-way with an extra rule, a copy under the same name, another peer in the device group.
    const names = deviceNames(serial, name);
    const [policy] = (await netbird.listPolicies()).filter((p) => p.name === names.policy);
    const device = first.groups.find((g) => g.name === names.deviceGroup)!;
    const team = first.groups.find((g) => g.name === names.consultantsGroup)!;
    const twoWay = { name: 'x', enabled: true, action: 'accept' as const, bidirectional: true, protocol: 'all' as const, sources: [team.id], destinations: [device.id] };
    await netbird.updatePolicy(policy!.id, { name: names.policy, enabled: true, rules: [twoWay, { ...twoWay, name: 'y', sources: [device.id] }] });
    await netbird.createPolicy({ name: names.policy, enabled: true, rules: [twoWay] });
    await netbird.updateGroup(device.id, { name: device.name, peers: [peerId, outsiderPeer] });
    assert.ok(sim.reachableFrom(peerId).includes(alicePeer), 'the drift lets the VM reach back');

    await grant(input);
    const healed = stateOf(serial, name);
    assert.equal(healed.policies.length, 1);
    assert.equal(healed.policies[0]!.id, policy!.id, 'the policy is corrected in place');
    assert.deepEqual(healed.policies[0]!.rules.map((r) => [r.bidirectional, r.sources?.map((g) => g.id)]), [[false, [team.id]]]);
    assert.deepEqual(healed.groups.find((g) => g.name === names.deviceGroup)!.peers.map((p) => p.id), [peerId]);
    assert.deepEqual(sim.reachableFrom(peerId), []);
  });

  test('with the device group the peer wait saw, the grant reads nothing but the users, and a group holding another peer is still corrected', async () => {
    const { serial, name } = await bootVm();
    const seen: VpnPeer = await new MockActivityEnvironment().run(activities().waitForPeer, { serial, name });
    assert.equal(seen.deviceGroup?.peersCount, 1, 'the peer list shows the VM alone in its device group');
    const before = exchanges.length;
    await activities().grantVpnAccess({ serial, name, peerId: seen.peerId, consultants: [ALICE], deviceGroup: seen.deviceGroup });
    const reads = exchanges.slice(before).filter((e) => e.method === 'GET').map((e) => e.template);
    assert.deepEqual(reads, ['/api/users'], 'one read: the users');
    assert.equal(stateOf(serial, name).policies.length, 1);
    assert.ok(sim.reachableFrom(alicePeer).includes(seen.peerId));

    // Another peer slipped into the device group: what the wait saw says so, and the grant puts the VM back alone.
    const other = await bootVm();
    const device = sim.dump().groups.find((g) => g.name === deviceNames(other.serial, other.name).deviceGroup)!;
    await netbird.updateGroup(device.id, { name: device.name, peers: [other.peerId, outsiderPeer] });
    const crowded: VpnPeer = await new MockActivityEnvironment().run(activities().waitForPeer, { serial: other.serial, name: other.name });
    assert.equal(crowded.deviceGroup?.peersCount, 2);
    await activities().grantVpnAccess({ ...other, consultants: [ALICE], deviceGroup: crowded.deviceGroup });
    assert.deepEqual(stateOf(other.serial, other.name).groups.find((g) => g.id === device.id)!.peers.map((p) => p.id), [other.peerId]);
  });

  test('a consultant without a NetBird user is reported, and with missingConsultant=fail the grant fails naming them', async () => {
    const reported = await bootVm();
    const result = await activities().grantVpnAccess({ ...reported, consultants: [ALICE, NOBODY] });
    assert.deepEqual(result, { missingConsultants: [NOBODY], grantedConsultants: [ALICE] });
    assert.deepEqual(stateOf(reported.serial, reported.name).usersWithGroup, [ALICE], 'the others still get access');

    const failing = await bootVm();
    const policiesBefore = sim.callCounts()['POST /api/policies'] ?? 0;
    const err = await failure(activities({ missingConsultant: 'fail' }).grantVpnAccess({ ...failing, consultants: [ALICE, NOBODY, 'zoe@x.example'] }));
    assert.equal(err.type, ErrorType.InvalidRequest);
    assert.equal(err.nonRetryable, true);
    assert.match(err.message, new RegExp(`${failing.serial}.*${NOBODY}, zoe@x\\.example`));
    assert.match(err.message, /Invite .* to NetBird.*rebuild the request/);
    const state = stateOf(failing.serial, failing.name);
    assert.deepEqual([state.policies.length, state.usersWithGroup.length], [0, 0], 'nothing was granted before failing');
    assert.equal(sim.callCounts()['POST /api/policies'] ?? 0, policiesBefore);
  });

  test('20 grants in parallel under a 429 storm all succeed: the client waits as NetBird asks', async () => {
    const vms = [];
    for (let i = 0; i < 20; i++) vms.push(await bootVm());
    const seen = exchanges.length;
    sim.faults.set({ rateLimit: { requestsPerSecond: 50, burst: 5 } });
    const grant = activities().grantVpnAccess;
    const results = await Promise.all(vms.map((vm) => grant({ ...vm, consultants: [ALICE, BOB] })));
    sim.faults.reset();

    const limited = exchanges.slice(seen).filter((e) => e.status === 429);
    assert.ok(limited.length >= 20, `the limiter refused only ${limited.length} requests: no storm`);
    assert.ok(results.every((r) => r.missingConsultants.length === 0));
    for (const vm of vms) {
      const state = stateOf(vm.serial, vm.name);
      assert.equal(state.policies.length, 1, `${vm.serial} has its policy`);
      assert.deepEqual(state.usersWithGroup.sort(), [ALICE, BOB.toLowerCase()], `${vm.serial}: no consultant lost a group to a concurrent update`);
      assert.ok(sim.reachableFrom(alicePeer).includes(vm.peerId));
      assert.deepEqual(sim.reachableFrom(vm.peerId), []);
    }
  });
});

describe('revokeVpnAccess', () => {
  test('run twice removes everything, and the second run finds nothing left', async () => {
    const vm = await bootVm();
    await activities().grantVpnAccess({ ...vm, consultants: [ALICE, BOB] });
    const revoke = activities().revokeVpnAccess;
    const first = await revoke(vm);
    assert.deepEqual(first.leftovers, []);
    assert.equal(first.removed.length, 7, `removed: ${first.removed.join('; ')}`);
    assert.deepEqual(stateOf(vm.serial, vm.name), { peers: [], groups: [], policies: [], setupKeys: [], usersWithGroup: [] });
    assert.ok(!sim.reachableFrom(alicePeer).includes(vm.peerId));
    assert.ok(sim.dump().users.every((u) => u.auto_groups.every((g) => sim.dump().groups.some((x) => x.id === g))));

    assert.deepEqual(await revoke(vm), { leftovers: [], removed: [] });
  });

  test('NetBird down or silent: the revoke throws a retryable failure, and a later retry finishes the job', async () => {
    const vm = await bootVm();
    await activities().grantVpnAccess({ ...vm, consultants: [ALICE] });
    const impatient = new NetbirdClient({ baseUrl: server.url, token: TOKEN, timeoutMs: 100, retry: { attempts: 2, baseDelayMs: 5 } });
    try {
      for (const fault of [{ down: 'unavailable' }, { down: 'reset' }, { hang: {} }, { hang: { answerAfterMs: 400 } }] as const) {
        sim.faults.reset();
        sim.faults.set(fault);
        const err = await failure(activities({}, impatient).revokeVpnAccess(vm));
        assert.equal(err.type, ErrorType.NetbirdTransient, JSON.stringify(fault));
        assert.equal(err.nonRetryable, false, `${JSON.stringify(fault)}: Temporal must retry it`);
        assert.match(err.message, new RegExp(`NetBird peer lab-${vm.serial.toLowerCase()}.*${vm.serial}`));
      }
    } finally {
      await impatient.close();
    }
    sim.faults.reset();
    assert.deepEqual((await activities().revokeVpnAccess(vm)).leftovers, []);
    assert.deepEqual(stateOf(vm.serial, vm.name).groups, []);
  });

  test('an object NetBird refuses to remove is named with its words, and everything else still goes', async () => {
    const vm = await bootVm();
    await activities().grantVpnAccess({ ...vm, consultants: [ALICE] });
    const names = deviceNames(vm.serial, vm.name);
    // An operator's own policy on the device group: NetBird will not delete a group a policy still uses.
    const device = stateOf(vm.serial, vm.name).groups.find((g) => g.name === names.deviceGroup)!;
    const ops = await netbird.createPolicy({
      name: 'ops-monitoring',
      enabled: true,
      rules: [{ name: 'icmp', enabled: true, action: 'accept', bidirectional: false, protocol: 'icmp', sources: [device.id], destinations: [device.id] }],
    });
    try {
      const result = await activities().revokeVpnAccess(vm);
      assert.deepEqual(result.leftovers, [`NetBird group ${names.deviceGroup} (NetBird: 400 group has been linked to policy: ops-monitoring)`]);
      const state = stateOf(vm.serial, vm.name);
      assert.deepEqual([state.peers, state.policies, state.setupKeys, state.usersWithGroup], [[], [], [], []]);
      assert.deepEqual(state.groups.map((g) => g.name), [names.deviceGroup]);
      assert.ok(result.leftovers.every((l) => vpnObjectsOf(vm.serial, vm.name).some((o) => l.startsWith(o))), 'leftovers use the words of vpnObjectsOf');
    } finally {
      await netbird.deletePolicy(ops.id);
    }
    assert.deepEqual(await activities().revokeVpnAccess(vm), { leftovers: [], removed: [`NetBird group ${names.deviceGroup}`] });
  });
});

describe('vpnObjectsOf', () => {
  test('names every NetBird object a request can have', () => {
    assert.deepEqual(vpnObjectsOf('VM-00042', 'web'), [
      'NetBird peer web-vm-00042',
      'NetBird policy pveflow-VM-00042-consultants-to-device',
      'NetBird setup key pveflow-VM-00042',
      "NetBird group consultants-VM-00042 in the consultants' users' auto_groups",
      'NetBird group consultants-VM-00042',
      'NetBird group device-VM-00042',
    ]);
  });
});

describe('waitForPeer', () => {
  test('a VM that never joins fails the wait with what to check, after the configured time', async () => {
    const serial = 'VM-0000Z';
    sim.faults.set({ peersNeverRegister: true });
    const env = new MockActivityEnvironment();
    const heartbeats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => heartbeats.push(d));
    const err = await failure(env.run(activities({ peerWaitSeconds: 0.2 }).waitForPeer, { serial, name: 'ghost' }));
    assert.equal(err.type, ErrorType.WaitTimedOut);
    assert.equal(err.nonRetryable, true);
    assert.match(err.message, /did not join NetBird within 0\.2 s.*cloud-init/);
    assert.ok(heartbeats.length > 0, 'the wait heartbeats');
  });
});

test('every response the activities received validates against the NetBird spec', (t) => {
  const contract = loadNetbirdContract();
  if (!contract) {
    if (process.env.CI) assert.fail('netbird-openapi.yml is missing: CI must run against the NetBird spec');
    t.skip('netbird-openapi.yml not found (set PVEFLOW_REFERENCE_DIR): responses not checked against the spec');
    return;
  }
  const problems = exchanges.flatMap((e) =>
    contract.checkResponse(e.method, e.template, e.status, e.body).map((p) => `${e.method} ${e.template} ${e.status}: ${p}`),
  );
  assert.deepEqual(problems, []);
});
