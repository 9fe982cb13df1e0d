import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { ActivitySettings } from '../src/activities/deps';
import { accessActivities, type GrantVpnAccessResult } from '../src/activities/netbird/access';
import { vpnObjectNames, vpnObjectsOf } from '../src/domain/vpnObjects';
import { peerActivities, type VpnPeer } from '../src/activities/netbird/peer';
import { standingGroupName } from '../src/activities/netbird/standingGroups';
import { createNetbirdGroups } from '../src/worker';
import { NetbirdApiError, NetbirdClient, type PolicyRequest } from '../src/clients/netbird';
import { deviceNames } from '../src/domain/deviceNames';
import { ErrorType } from '../src/errors';
import { createNetbirdSimulator, loadNetbirdContract, type NetbirdExchange, type NetbirdListening, type NetbirdSimulator } from '../src/simulators/netbird';

/**
 * The NetBird activities against the simulated NetBird over HTTP: the access model they leave behind, judged from
 * the simulator's own state (who may reach whom), and how they behave when NetBird refuses, limits or goes down.
 */

const TOKEN = 'nbp_accessTestToken000000000000000000000';
const ALICE = 'alice@consultancy.example';
const BOB = 'Bob@Consultancy.example';
const NOBODY = 'dave@consultancy.example';
/** Consultants each used by one test only: their first grant is that test's to observe. */
const CAROL = 'carol@consultancy.example';
const FRANK = 'frank@consultancy.example';
const GRACE = 'grace@consultancy.example';
const HEIDI = 'heidi@consultancy.example';

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
let carolPeer: string;
let frankPeer: string;
let serialCounter = 0;

/** One worker process's caches per client, as the composition root builds them once. */
const groupsOf = new Map<NetbirdClient, ReturnType<typeof createNetbirdGroups>>();

function activities(overrides: Partial<ActivitySettings> = {}, client: NetbirdClient = netbird) {
  if (!groupsOf.has(client)) groupsOf.set(client, createNetbirdGroups(client));
  const deps = { netbird: client, netbirdGroups: groupsOf.get(client)!, settings: { ...settings, ...overrides } };
  return { ...accessActivities(deps), ...peerActivities(deps) };
}

/**
 * What the build does before access is granted: device group, one-off key, the VM boots and joins, we find it.
 * `deviceGroupCreated` as prepareCloudInit reports it: the group is new.
 */
async function bootVm(): Promise<{ serial: string; name: string; peerId: string; seen: VpnPeer; deviceGroupCreated: boolean }> {
  const serial = `VM-${String(++serialCounter).padStart(5, '0')}`;
  const name = 'lab';
  const names = deviceNames(serial, name);
  const group = await netbird.createGroup({ name: names.deviceGroup, peers: [] });
  const seen = await joinDeviceGroup(serial, name, group.id);
  return { serial, name, peerId: seen.peerId, seen, deviceGroupCreated: true };
}

/** The VM boots with a fresh one-off key into its device group and joins; the peer wait finds it. */
async function joinDeviceGroup(serial: string, name: string, groupId: string): Promise<VpnPeer> {
  const names = deviceNames(serial, name);
  const key = await netbird.createSetupKey({ name: names.setupKey, type: 'one-off', expires_in: 86_400, auto_groups: [groupId], usage_limit: 1 });
  assert.ok(sim.enrollPeer({ setupKey: key.key, hostname: names.hostname }));
  return new MockActivityEnvironment().run(activities().waitForPeer, { serial, name });
}

/** Everything of one request in the simulator's state, and the policy's sources by group name. */
function stateOf(serial: string, name: string) {
  const dump = sim.dump();
  const names = deviceNames(serial, name);
  const policies = dump.policies.filter((p) => p.name.includes(serial));
  const groupName = (id: string) => dump.groups.find((g) => g.id === id)?.name ?? `(gone) ${id}`;
  return {
    peers: dump.peers.filter((p) => p.name === names.hostname),
    groups: dump.groups.filter((g) => g.name.includes(serial)),
    policies,
    setupKeys: dump.setupKeys.filter((k) => k.name.includes(serial)),
    sources: policies.flatMap((p) => p.rules.flatMap((r) => (r.sources ?? []).map((g) => groupName(g.id)))).sort(),
  };
}

/** A consultant's standing group as NetBird holds it, and whether their user carries it in auto_groups. */
function standing(email: string) {
  const dump = sim.dump();
  const group = dump.groups.filter((g) => g.name === standingGroupName(email));
  assert.ok(group.length <= 1, `one standing group for ${email}, not ${group.length}`);
  const user = dump.users.find((u) => u.email === email.toLowerCase())!;
  return { group: group[0], held: group[0] ? user.auto_groups.includes(group[0].id) : false, autoGroups: user.auto_groups };
}

/** NetBird calls `fn` made, per `METHOD route`, as the simulator counts them (as bench/calls.ts does). */
async function callsDuring(fn: () => Promise<unknown>): Promise<Record<string, number>> {
  const before = sim.callCounts();
  await fn();
  const after = sim.callCounts();
  return Object.fromEntries(
    Object.entries(after)
      .map(([k, v]) => [k, v - (before[k] ?? 0)])
      .filter(([, v]) => (v as number) > 0),
  );
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
    // The account as docs/operations.md prepares it: NetBird's all-to-all Default policy deleted.
    defaultPolicy: false,
    users: [
      { email: 'owner@pveflow.example', name: 'Owner', role: 'owner' },
      { email: ALICE, name: 'Alice' },
      { email: BOB.toLowerCase(), name: 'Bob' },
      { email: 'eve@elsewhere.example', name: 'Eve' },
      { email: CAROL, name: 'Carol' },
      { email: FRANK, name: 'Frank' },
      { email: GRACE, name: 'Grace' },
      { email: HEIDI, name: 'Heidi' },
    ],
    onExchange: (e) => exchanges.push(e),
  });
  server = await sim.listen({});
  netbird = new NetbirdClient({ baseUrl: server.url, token: TOKEN, timeoutMs: 2_000, retry: { maxDelayMs: 2_000 } });
  // The consultants' own machines, registered by logging in; Eve is a NetBird user who is on no request.
  alicePeer = sim.enrollUserPeer({ email: ALICE, hostname: 'alice-laptop' }).id;
  bobPeer = sim.enrollUserPeer({ email: BOB, hostname: 'bob-laptop' }).id;
  outsiderPeer = sim.enrollUserPeer({ email: 'eve@elsewhere.example', hostname: 'eve-laptop' }).id;
  carolPeer = sim.enrollUserPeer({ email: CAROL, hostname: 'carol-laptop' }).id;
  frankPeer = sim.enrollUserPeer({ email: FRANK, hostname: 'frank-laptop' }).id;
});

beforeEach(() => sim.faults.reset());

after(async () => {
  await netbird.close();
  await server.close();
});

describe('grantVpnAccess', () => {
  test("leaves one peer, one device group, one one-way policy from the consultants' standing groups, and nobody reached back", async () => {
    const { serial, name, peerId } = await bootVm();
    const result = await activities().grantVpnAccess({ serial, name, peerId, consultants: [ALICE, BOB] });
    const names = deviceNames(serial, name);
    assert.deepEqual(result, { missingConsultants: [], grantedConsultants: [ALICE, BOB], policy: names.policy });

    const state = stateOf(serial, name);
    assert.deepEqual(
      state.peers.map((p) => p.id),
      [peerId],
    );
    assert.deepEqual(
      state.groups.map((g) => g.name),
      [names.deviceGroup],
      'no per-request consultants group',
    );
    const device = state.groups[0]!;
    assert.deepEqual(
      device.peers.map((p) => p.id),
      [peerId],
      'the device group holds the VM alone',
    );
    assert.equal(state.policies.length, 1);
    const [rule, ...moreRules] = state.policies[0]!.rules;
    assert.deepEqual(moreRules, []);
    const alice = standing(ALICE);
    const bob = standing(BOB);
    assert.deepEqual([rule!.action, rule!.bidirectional, rule!.sources?.map((g) => g.id).sort(), rule!.destinations?.map((g) => g.id)], ['accept', false, [alice.group!.id, bob.group!.id].sort(), [device.id]]);
    assert.deepEqual(state.sources, [standingGroupName(ALICE), standingGroupName(BOB)].sort());
    assert.equal(standingGroupName(BOB), 'pveflow-consultant-bob@consultancy.example', 'the name is the e-mail, lowercased');
    assert.ok(alice.held && bob.held, 'each consultant carries their standing group');
    // Groups propagation put the consultants' existing machines into their standing groups.
    assert.deepEqual(
      alice.group!.peers.map((p) => p.id),
      [alicePeer],
    );
    assert.deepEqual(
      bob.group!.peers.map((p) => p.id),
      [bobPeer],
    );

    // Who may reach whom, from the simulator's policies and groups.
    assert.ok(sim.reachableFrom(alicePeer).includes(peerId), "Alice's laptop reaches the VM");
    assert.ok(sim.reachableFrom(bobPeer).includes(peerId), "Bob's laptop reaches the VM");
    assert.ok(!sim.reachableFrom(outsiderPeer).includes(peerId), 'a NetBird user on no request does not');
    assert.deepEqual(sim.reachableFrom(peerId), [], 'the VM reaches nobody: not the consultants, not anyone');
  });

  test("a consultant's first grant makes their standing group and writes their user once; the next request writes neither", async () => {
    const first = await bootVm();
    const calls = await callsDuring(() => activities().grantVpnAccess({ ...first, consultants: [CAROL], deviceGroup: first.seen.deviceGroup }));
    assert.equal(calls['POST /api/groups'], 1, 'the standing group is made');
    assert.equal(calls['PUT /api/users/{userId}'], 1, 'and given to the user, once');
    const carol = standing(CAROL);
    assert.ok(carol.held);
    assert.deepEqual(
      carol.group!.peers.map((p) => p.id),
      [carolPeer],
    );
    assert.ok(sim.reachableFrom(carolPeer).includes(first.peerId));

    const second = await bootVm();
    const again = await callsDuring(() => activities().grantVpnAccess({ ...second, consultants: [CAROL.toUpperCase()], deviceGroup: second.seen.deviceGroup }));
    assert.equal(again['POST /api/groups'] ?? 0, 0, 'no group is made');
    assert.equal(again['PUT /api/users/{userId}'] ?? 0, 0, 'no user is written');
    assert.equal(standing(CAROL).group!.id, carol.group!.id, 'the same standing group');
    assert.deepEqual(standing(CAROL).autoGroups, carol.autoGroups);
    assert.deepEqual(stateOf(second.serial, second.name).sources, [standingGroupName(CAROL)]);
    assert.ok(sim.reachableFrom(carolPeer).includes(second.peerId), 'Carol reaches both VMs');
    assert.ok(sim.reachableFrom(carolPeer).includes(first.peerId));
    assert.deepEqual(sim.reachableFrom(second.peerId), []);
  });

  test('a second grant for consultants seen before costs the users read and the policy, plus one group lookup after a restart', async () => {
    const warm = await bootVm();
    await activities().grantVpnAccess({ ...warm, consultants: [ALICE, BOB], deviceGroup: warm.seen.deviceGroup });

    const vm = await bootVm();
    const calls = await callsDuring(() => activities().grantVpnAccess({ ...vm, consultants: [ALICE, BOB], deviceGroup: vm.seen.deviceGroup }));
    assert.deepEqual(calls, { 'GET /api/users': 1, 'POST /api/policies': 1 });

    // A new worker process knows no ids yet: one read of the groups finds both consultants' standing groups.
    const restarted = new NetbirdClient({ baseUrl: server.url, token: TOKEN, timeoutMs: 2_000 });
    try {
      const next = await bootVm();
      const cold = await callsDuring(() => activities({}, restarted).grantVpnAccess({ ...next, consultants: [ALICE, BOB], deviceGroup: next.seen.deviceGroup }));
      assert.deepEqual(cold, { 'GET /api/users': 1, 'GET /api/groups': 1, 'POST /api/policies': 1 });
      assert.ok(Object.values(cold).reduce((a, b) => a + b, 0) <= 3);
      assert.deepEqual(stateOf(next.serial, next.name).sources, [standingGroupName(ALICE), standingGroupName(BOB)].sort());
    } finally {
      await restarted.close();
    }
  });

  test("a standing group deleted behind pveflow's back is made anew on the next grant, although this worker cached its id", async () => {
    const first = await bootVm();
    const grant = activities().grantVpnAccess;
    await grant({ ...first, consultants: [FRANK] });
    const old = standing(FRANK).group!;
    // An operator tidies NetBird by hand: the request's policy goes, Frank loses the group, the group is deleted.
    await activities().revokeVpnAccess(first);
    const frank = (await netbird.listUsers()).find((u) => u.email === FRANK)!;
    await netbird.updateUser(frank.id, { role: frank.role, is_blocked: frank.is_blocked, auto_groups: frank.auto_groups.filter((g) => g !== old.id) });
    await netbird.deleteGroup(old.id);
    assert.equal(standing(FRANK).group, undefined);

    const second = await bootVm();
    const result = await grant({ ...second, consultants: [FRANK], deviceGroup: second.seen.deviceGroup });
    assert.deepEqual(result.grantedConsultants, [FRANK]);
    const now = standing(FRANK);
    assert.ok(now.group && now.group.id !== old.id, 'a new standing group');
    assert.ok(now.held, 'carried by Frank again');
    assert.ok(!now.autoGroups.includes(old.id));
    assert.deepEqual(stateOf(second.serial, second.name).sources, [standingGroupName(FRANK)]);
    assert.ok(sim.reachableFrom(frankPeer).includes(second.peerId), "Frank's laptop reaches the VM");
  });

  test('a standing group deleted between the users read and the policy: the grant fails retryably, and its retry grants', async () => {
    const warm = await bootVm();
    // A client of its own, so that its cache holds Grace's group as this worker would.
    const client = new NetbirdClient({ baseUrl: server.url, token: TOKEN, timeoutMs: 2_000 });
    let sabotage = true;
    const createPolicy = client.createPolicy.bind(client);
    client.createPolicy = async (policy: PolicyRequest) => {
      if (sabotage) {
        sabotage = false;
        const { group } = standing(GRACE);
        const grace = (await netbird.listUsers()).find((u) => u.email === GRACE)!;
        await netbird.updateUser(grace.id, { role: grace.role, is_blocked: grace.is_blocked, auto_groups: grace.auto_groups.filter((g) => g !== group!.id) });
        await netbird.deleteGroup(group!.id);
      }
      return createPolicy(policy);
    };
    try {
      // Grace's first grant (for another VM, its policy since revoked) leaves her group in this client's cache.
      sabotage = false;
      await activities({}, client).grantVpnAccess({ ...warm, consultants: [GRACE] });
      await activities({}, client).revokeVpnAccess(warm);
      sabotage = true;

      const vm = await bootVm();
      const input = { ...vm, consultants: [GRACE], deviceGroup: vm.seen.deviceGroup };
      const err = await failure(new MockActivityEnvironment().run(activities({}, client).grantVpnAccess, input));
      assert.equal(err.type, ErrorType.NetbirdTransient);
      assert.equal(err.nonRetryable, false, 'Temporal retries it');
      assert.match(err.message, /standing group was deleted meanwhile/);
      assert.ok(!sim.reachableFrom(vm.peerId).length, 'the VM reaches nobody meanwhile');

      const retried: GrantVpnAccessResult = await new MockActivityEnvironment({ attempt: 2 }).run(activities({}, client).grantVpnAccess, input);
      assert.deepEqual(retried.grantedConsultants, [GRACE]);
      const state = stateOf(vm.serial, vm.name);
      assert.equal(state.policies.length, 1, 'the retry corrects the policy it finds, it makes no second one');
      assert.deepEqual(state.sources, [standingGroupName(GRACE)]);
      assert.ok(standing(GRACE).held);
    } finally {
      await client.close();
    }
  });

  test('a NetBird that refuses the policy naming a standing group: retryable, and the cached ids are looked up again', async () => {
    const vm = await bootVm();
    const client = new NetbirdClient({ baseUrl: server.url, token: TOKEN, timeoutMs: 2_000 });
    let refuse = false;
    const createPolicy = client.createPolicy.bind(client);
    client.createPolicy = async (policy: PolicyRequest) => {
      if (!refuse) return createPolicy(policy);
      refuse = false;
      const message = `group ${policy.rules[0]!.sources[0]} not found`;
      throw new NetbirdApiError({ operation: 'POST /api/policies', path: '/api/policies', status: 422, netbirdMessage: message, attempts: 1 });
    };
    try {
      const warm = await bootVm();
      await activities({}, client).grantVpnAccess({ ...warm, consultants: [ALICE] }); // Alice's id now cached
      refuse = true;
      const input = { ...vm, consultants: [ALICE], deviceGroup: vm.seen.deviceGroup };
      const err = await failure(new MockActivityEnvironment().run(activities({}, client).grantVpnAccess, input));
      assert.equal(err.type, ErrorType.NetbirdTransient);
      assert.equal(err.nonRetryable, false);
      const retry = await callsDuring(() => new MockActivityEnvironment({ attempt: 2 }).run(activities({}, client).grantVpnAccess, input));
      assert.equal(retry['GET /api/groups'], 1, 'the cache was dropped: the standing group is looked up again');
      assert.deepEqual(stateOf(vm.serial, vm.name).sources, [standingGroupName(ALICE)]);
    } finally {
      await client.close();
    }
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
    const team = standing(ALICE).group!;
    const twoWay = { name: 'x', enabled: true, action: 'accept' as const, bidirectional: true, protocol: 'all' as const, sources: [team.id], destinations: [device.id] };
    await netbird.updatePolicy(policy!.id, { name: names.policy, enabled: true, rules: [twoWay, { ...twoWay, name: 'y', sources: [device.id] }] });
    await netbird.createPolicy({ name: names.policy, enabled: true, rules: [twoWay] });
    await netbird.updateGroup(device.id, { name: device.name, peers: [peerId, outsiderPeer] });
    assert.ok(sim.reachableFrom(peerId).includes(alicePeer), 'the drift lets the VM reach back');

    await grant(input);
    const healed = stateOf(serial, name);
    assert.equal(healed.policies.length, 1);
    assert.equal(healed.policies[0]!.id, policy!.id, 'the policy is corrected in place');
    assert.deepEqual(
      healed.policies[0]!.rules.map((r) => [r.bidirectional, r.sources?.map((g) => g.id)]),
      [[false, [team.id]]],
    );
    assert.deepEqual(
      healed.groups.find((g) => g.name === names.deviceGroup)!.peers.map((p) => p.id),
      [peerId],
    );
    assert.deepEqual(sim.reachableFrom(peerId), []);
  });

  test('a retried grant, or one whose device group holds another peer, looks for an earlier policy instead of adding a second', async () => {
    const vm = await bootVm();
    const input = { ...vm, consultants: [ALICE], deviceGroup: vm.seen.deviceGroup };
    await new MockActivityEnvironment().run(activities().grantVpnAccess, input);
    // The first attempt's policy landed but its answer was lost: the retry finds it.
    await new MockActivityEnvironment({ attempt: 2 }).run(activities().grantVpnAccess, input);
    assert.equal(stateOf(vm.serial, vm.name).policies.length, 1);
    // A rebuild after the VM vanished: its device group still holds the lost VM's peer, and the old policy is there.
    const rebuilt = { ...input, deviceGroup: { id: vm.seen.deviceGroup!.id, peersCount: 2 } };
    await new MockActivityEnvironment().run(activities().grantVpnAccess, rebuilt);
    assert.equal(stateOf(vm.serial, vm.name).policies.length, 1);
  });

  test('a rebuild after a revoke that deleted the peer but not the policy adopts that policy instead of adding a second', async () => {
    const vm = await bootVm();
    await new MockActivityEnvironment().run(activities().grantVpnAccess, { ...vm, consultants: [ALICE], deviceGroup: vm.seen.deviceGroup });
    const names = deviceNames(vm.serial, vm.name);
    const [policy] = stateOf(vm.serial, vm.name).policies;
    // The revoke got as far as the peer; NetBird refused the policy, so the device group (which it points at) stayed.
    await netbird.deletePeer(vm.peerId);
    const device = sim.dump().groups.find((g) => g.name === names.deviceGroup)!;
    // The rebuild's VM joins the adopted group through a new key, and the peer list shows it alone there.
    const seen = await joinDeviceGroup(vm.serial, vm.name, device.id);
    assert.equal(seen.deviceGroup?.peersCount, 1, 'the adopted group holds the new VM alone');

    await new MockActivityEnvironment().run(activities().grantVpnAccess, {
      serial: vm.serial,
      name: vm.name,
      peerId: seen.peerId,
      consultants: [ALICE],
      deviceGroup: seen.deviceGroup,
      deviceGroupCreated: false,
    });
    const after = stateOf(vm.serial, vm.name);
    assert.deepEqual(
      after.policies.map((p) => p.id),
      [policy!.id],
      'the earlier policy is kept, and no second one of its name is made',
    );
    assert.ok(sim.reachableFrom(alicePeer).includes(seen.peerId));
  });

  test('with the device group the peer wait saw, the grant reads nothing but the users, and a group holding another peer is still corrected', async () => {
    const { serial, name, seen } = await bootVm();
    assert.equal(seen.deviceGroup?.peersCount, 1, 'the peer list shows the VM alone in its device group');
    const before = exchanges.length;
    await activities().grantVpnAccess({ serial, name, peerId: seen.peerId, consultants: [ALICE], deviceGroup: seen.deviceGroup, deviceGroupCreated: true });
    const reads = exchanges
      .slice(before)
      .filter((e) => e.method === 'GET')
      .map((e) => e.template);
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
    assert.deepEqual(
      stateOf(other.serial, other.name)
        .groups.find((g) => g.id === device.id)!
        .peers.map((p) => p.id),
      [other.peerId],
    );
    assert.equal(stateOf(other.serial, other.name).policies.length, 1);
  });

  test('a consultant without a NetBird user is reported; with nobody found there is no policy; with missingConsultant=fail the grant fails naming them', async () => {
    const reported = await bootVm();
    const result = await activities().grantVpnAccess({ ...reported, consultants: [ALICE, NOBODY] });
    assert.deepEqual(result, { missingConsultants: [NOBODY], grantedConsultants: [ALICE], policy: deviceNames(reported.serial, reported.name).policy });
    assert.deepEqual(stateOf(reported.serial, reported.name).sources, [standingGroupName(ALICE)], 'the others still get access');
    assert.ok(!sim.dump().groups.some((g) => g.name === standingGroupName(NOBODY)), 'no group for someone without a user');

    const nobody = await bootVm();
    const alone = await activities().grantVpnAccess({ ...nobody, consultants: [NOBODY], deviceGroup: nobody.seen.deviceGroup });
    assert.deepEqual(alone, { missingConsultants: [NOBODY], grantedConsultants: [], policy: null });
    const empty = stateOf(nobody.serial, nobody.name);
    assert.deepEqual([empty.policies.length, empty.groups.length], [0, 1], 'no policy, the device group as before');
    assert.deepEqual(sim.reachableFrom(nobody.peerId), []);

    const failing = await bootVm();
    const policiesBefore = sim.callCounts()['POST /api/policies'] ?? 0;
    const err = await failure(activities({ missingConsultant: 'fail' }).grantVpnAccess({ ...failing, consultants: [ALICE, NOBODY, 'zoe@x.example'] }));
    assert.equal(err.type, ErrorType.InvalidRequest);
    assert.equal(err.nonRetryable, true);
    assert.match(err.message, new RegExp(`${failing.serial}.*${NOBODY}, zoe@x\\.example`));
    assert.match(err.message, /Invite .* to NetBird.*rebuild the request/);
    assert.equal(stateOf(failing.serial, failing.name).policies.length, 0, 'nothing was granted before failing');
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
    assert.ok(standing(ALICE).held && standing(BOB).held, 'no consultant lost their group to a concurrent update');
    for (const vm of vms) {
      const state = stateOf(vm.serial, vm.name);
      assert.equal(state.policies.length, 1, `${vm.serial} has its policy`);
      assert.deepEqual(state.sources, [standingGroupName(ALICE), standingGroupName(BOB)].sort());
      assert.ok(sim.reachableFrom(alicePeer).includes(vm.peerId));
      assert.deepEqual(sim.reachableFrom(vm.peerId), []);
    }
  });

  test('concurrent first grants for a new consultant make one standing group and write the user once', async () => {
    const vms: Array<Awaited<ReturnType<typeof bootVm>>> = [];
    for (let i = 0; i < 6; i++) vms.push(await bootVm());
    const calls = await callsDuring(() => Promise.all(vms.map((vm) => activities().grantVpnAccess({ ...vm, consultants: [HEIDI], deviceGroup: vm.seen.deviceGroup }))));
    assert.equal(calls['POST /api/groups'], 1, 'one group made');
    assert.equal(calls['GET /api/groups'], 1, 'one lookup: the other grants waited for it');
    assert.equal(calls['PUT /api/users/{userId}'], 1, 'one user write');
    assert.ok(standing(HEIDI).held);
    for (const vm of vms) assert.deepEqual(stateOf(vm.serial, vm.name).sources, [standingGroupName(HEIDI)]);
  });
});

describe('revokeVpnAccess', () => {
  test("run twice removes everything of the request, leaves the consultants' standing groups, and the second run finds nothing", async () => {
    const vm = await bootVm();
    await activities().grantVpnAccess({ ...vm, consultants: [ALICE, BOB] });
    const revoke = activities().revokeVpnAccess;
    const first = await revoke(vm);
    assert.deepEqual(first.leftovers, []);
    assert.deepEqual(first.removed, vpnObjectsOf(vm.serial, vm.name), 'removed, in the words of vpnObjectsOf');
    assert.deepEqual(stateOf(vm.serial, vm.name), { peers: [], groups: [], policies: [], setupKeys: [], sources: [] });
    assert.ok(!sim.reachableFrom(alicePeer).includes(vm.peerId));
    assert.ok(standing(ALICE).held && standing(BOB).held, 'the standing groups stay with the consultants');
    assert.ok(sim.dump().users.every((u) => u.auto_groups.every((g) => sim.dump().groups.some((x) => x.id === g))));

    assert.deepEqual(await revoke(vm), { leftovers: [], removed: [] });
  });

  test("a request granted by the old model: consultants-<id> leaves the users' auto_groups and is deleted", async () => {
    const vm = await bootVm();
    const names = deviceNames(vm.serial, vm.name);
    const aliceBefore = standing(ALICE);
    // What an older pveflow left: the per-request group in Alice's and Bob's auto_groups, and a policy from it.
    const team = await netbird.createGroup({ name: names.consultantsGroup, peers: [] });
    const device = stateOf(vm.serial, vm.name).groups.find((g) => g.name === names.deviceGroup)!;
    for (const user of (await netbird.listUsers()).filter((u) => [ALICE, BOB.toLowerCase()].includes(u.email))) {
      await netbird.updateUser(user.id, { role: user.role, is_blocked: user.is_blocked, auto_groups: [...user.auto_groups, team.id] });
    }
    await netbird.createPolicy({
      name: names.policy,
      enabled: true,
      rules: [{ name: names.policy, enabled: true, action: 'accept', bidirectional: false, protocol: 'all', sources: [team.id], destinations: [device.id] }],
    });
    assert.ok(sim.reachableFrom(alicePeer).includes(vm.peerId));

    const result = await activities().revokeVpnAccess(vm);
    const objects = vpnObjectNames(vm.serial, vm.name);
    assert.deepEqual(result.leftovers, []);
    assert.deepEqual(result.removed, [objects.peer, objects.policy, objects.setupKey, objects.membershipOf(ALICE), objects.membershipOf(BOB.toLowerCase()), objects.consultantsGroup, objects.deviceGroup]);
    assert.deepEqual(stateOf(vm.serial, vm.name).groups, []);
    assert.ok(!sim.dump().users.some((u) => u.auto_groups.includes(team.id)), 'no user holds consultants-<id> any more');
    assert.deepEqual(standing(ALICE), aliceBefore, "Alice's standing group and auto_groups are as before the old model's grant");
    assert.deepEqual(await activities().revokeVpnAccess(vm), { leftovers: [], removed: [] });
  });

  test('the revoke of a request granted today reads the groups once and never the users', async () => {
    const vm = await bootVm();
    await activities().grantVpnAccess({ ...vm, consultants: [ALICE] });
    const calls = await callsDuring(() => activities().revokeVpnAccess(vm));
    assert.equal(calls['GET /api/groups'], 1);
    assert.equal(calls['GET /api/users'] ?? 0, 0);
    assert.equal(calls['PUT /api/users/{userId}'] ?? 0, 0);
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
      assert.deepEqual([state.peers, state.policies, state.setupKeys], [[], [], []]);
      assert.deepEqual(
        state.groups.map((g) => g.name),
        [names.deviceGroup],
      );
      assert.ok(
        result.leftovers.every((l) => vpnObjectsOf(vm.serial, vm.name).some((o) => l.startsWith(o))),
        'leftovers use the words of vpnObjectsOf',
      );
    } finally {
      await netbird.deletePolicy(ops.id);
    }
    assert.deepEqual(await activities().revokeVpnAccess(vm), { leftovers: [], removed: [`NetBird group ${names.deviceGroup}`] });
  });
});

describe('vpnObjectsOf', () => {
  test('names every NetBird object a request can have', () => {
    assert.deepEqual(vpnObjectsOf('VM-00042', 'web'), ['NetBird peer web-vm-00042', 'NetBird policy pveflow-VM-00042-consultants-to-device', 'NetBird setup key pveflow-VM-00042', 'NetBird group device-VM-00042']);
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

test('every response the activities received validates against the NetBird spec', () => {
  const contract = loadNetbirdContract();
  const problems = exchanges.flatMap((e) => contract.checkResponse(e.method, e.template, e.status, e.body).map((p) => `${e.method} ${e.template} ${e.status}: ${p}`));
  assert.deepEqual(problems, []);
});

describe("peers are the request's only when its setup key made them", () => {
  test('a same-named peer outside the device group is never taken for the VM, nor deleted by the revoke', async () => {
    const serial = `VM-${String(++serialCounter).padStart(5, '0')}`;
    const name = 'lab';
    const names = deviceNames(serial, name);
    const group = await netbird.createGroup({ name: names.deviceGroup, peers: [] });
    // Someone's laptop carries the VM's hostname: NetBird names peers by what they say they are.
    const impostor = sim.enrollUserPeer({ email: 'eve@elsewhere.example', hostname: names.hostname });
    await assert.rejects(
      new MockActivityEnvironment().run(activities({ peerWaitSeconds: 1 }).waitForPeer, { serial, name }),
      (err: ApplicationFailure) => err.type === ErrorType.WaitTimedOut,
      'the impostor alone is not the VM',
    );

    const seen = await joinDeviceGroup(serial, name, group.id);
    assert.notEqual(seen.peerId, impostor.id, 'the peer the setup key put in the device group');

    const revoked = (await new MockActivityEnvironment().run(activities().revokeVpnAccess, { serial, name })) as { leftovers: string[] };
    assert.deepEqual(revoked.leftovers, []);
    const left = sim
      .dump()
      .peers.filter((p) => p.name === names.hostname)
      .map((p) => p.id);
    assert.deepEqual(left, [impostor.id], 'the VM peer deleted, the same-named stranger kept');
  });
});
