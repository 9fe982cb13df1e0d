import assert from 'node:assert/strict';
import { STANDING_GROUP_PREFIX, standingGroupName } from '../../src/activities/netbird/standingGroups';
import { deviceNames } from '../../src/domain/deviceNames';
import type { NetbirdStateDump } from '../../src/simulators/netbird';
import type { SimulatedWorld } from '../../src/simulators/world';

/**
 * What a run that went through faults (kills, lock timeouts, cut or stalled connections) must leave in the simulated
 * world, the same as a run without any: exactly one VM and one set of NetBird objects per fulfilled request and
 * nothing else, and once all are completed nothing of any of them. Shared by the chaos tests and the network-fault
 * tests.
 */
export interface WorldBaseline {
  nb: NetbirdStateDump;
  vms: Set<number>;
}

/** What the world held before the run: the runs' checks count only what was added since. */
export function worldBaseline(w: SimulatedWorld): WorldBaseline {
  return { nb: w.netbird.dump(), vms: new Set(w.pve.dump().vms.map((v) => v.vmid)) };
}

const added = <T extends { name: string }>(now: T[], then: T[]) =>
  now
    .map((x) => x.name)
    .filter((n) => !then.some((t) => t.name === n))
    .sort();

/**
 * Every request Fulfilled with exactly its VM (running, unlocked, its marker on it) and its peer, device group and
 * policy, the consultants' standing groups, at most one setup key each, and nothing else new: no orphan VM, no
 * duplicate, no object of nobody's.
 */
export function assertOnePerRequest(w: SimulatedWorld, before: WorldBaseline, records: ReadonlyArray<{ serial: string; device: { vmid: number } }>, opts: { name: string; consultants: readonly string[] }): void {
  const serials = records.map((r) => r.serial);
  const vms = w.pve.dump().vms.filter((v) => !before.vms.has(v.vmid));
  const byVmid = new Map(records.map((r) => [r.device.vmid, r.serial]));
  assert.equal(vms.length, serials.length, `${serials.length} new VMs, found ${vms.length}: ${vms.map((v) => `${v.vmid} ${v.config.description ?? ''}`.split('\n')[0]).join(', ')}`);
  assert.equal(byVmid.size, serials.length, 'each request has its own VMID');
  for (const vm of vms) {
    const serial = byVmid.get(vm.vmid);
    assert.ok(serial, `VM ${vm.vmid} belongs to no request (leaked VMID)`);
    assert.ok(String(vm.config.description).startsWith(deviceNames(serial, opts.name).marker), `VM ${vm.vmid} carries ${serial}'s marker`);
    assert.equal(vm.status, 'running', `VM ${vm.vmid} runs`);
    assert.equal(vm.lock, undefined, `VM ${vm.vmid} holds no lock`);
  }

  const names = serials.map((serial) => deviceNames(serial, opts.name));
  const nb = w.netbird.dump();
  const standingNames = opts.consultants.map(standingGroupName);
  assert.deepEqual(added(nb.peers, before.nb.peers), names.map((n) => n.hostname).sort(), 'one peer per request');
  assert.deepEqual(
    added(nb.groups, before.nb.groups),
    [...names.map((n) => n.deviceGroup), ...standingNames.filter((g) => !before.nb.groups.some((b) => b.name === g))].sort(),
    'one device group per request, and one standing group per consultant (however many workers made it at once)',
  );
  assert.deepEqual(added(nb.policies, before.nb.policies), names.map((n) => n.policy).sort(), 'one policy per request');
  const standingIds = nb.groups.filter((g) => standingNames.includes(g.name)).map((g) => g.id);
  for (const policy of nb.policies.filter((p) => names.some((n) => n.policy === p.name))) {
    assert.deepEqual(policy.rules.flatMap((r) => (r.sources ?? []).map((g) => g.id)).sort(), [...standingIds].sort(), `${policy.name}: from the standing groups`);
  }
  const keys = added(nb.setupKeys, before.nb.setupKeys);
  assert.deepEqual(
    keys.filter((k) => !names.some((n) => n.setupKey === k)),
    [],
    "no setup key but the requests'",
  );
  assert.equal(new Set(keys).size, keys.length, 'at most one setup key per request');
}

/** After every request was completed: no VM, peer, group, policy, setup key or membership of any of them is left. */
export function assertNothingLeft(w: SimulatedWorld, before: WorldBaseline, serials: readonly string[], opts: { name: string; consultants: readonly string[] }): void {
  const names = serials.map((serial) => deviceNames(serial, opts.name));
  const standingNames = opts.consultants.map(standingGroupName);
  assert.deepEqual(
    w.pve
      .dump()
      .vms.filter((v) => !before.vms.has(v.vmid))
      .map((v) => v.vmid),
    [],
    'no VM left',
  );
  const after = w.netbird.dump();
  assert.deepEqual(added(after.peers, before.nb.peers), [], 'no peer left');
  // Only the consultants' standing groups stay (they are the consultants', not a request's): no device group, no
  // per-request consultants group.
  const leftGroups = added(after.groups, before.nb.groups);
  assert.deepEqual(
    leftGroups.filter((g) => !g.startsWith(STANDING_GROUP_PREFIX)),
    [],
    'no group of a request left',
  );
  assert.ok(
    leftGroups.every((g) => standingNames.includes(g)),
    `only the standing groups of the consultants: ${leftGroups.join(', ')}`,
  );
  assert.ok(!after.groups.some((g) => names.some((n) => g.name === n.deviceGroup || g.name === n.consultantsGroup)), 'no device or consultants group left');
  assert.deepEqual(added(after.policies, before.nb.policies), [], 'no policy left');
  const standingLeft = after.groups.filter((g) => g.name.startsWith(STANDING_GROUP_PREFIX)).map((g) => g.id);
  const referring = after.policies.filter((p) => p.rules.some((r) => [...(r.sources ?? []), ...(r.destinations ?? [])].some((g) => standingLeft.includes(g.id))));
  assert.deepEqual(
    referring.map((p) => p.name),
    [],
    'no policy refers to a standing group',
  );
  assert.deepEqual(added(after.setupKeys, before.nb.setupKeys), [], 'no setup key left');
  const memberships = after.users.flatMap((u) => (u.auto_groups ?? []).filter((g) => !before.nb.users.some((b) => b.id === u.id && (b.auto_groups ?? []).includes(g))));
  assert.deepEqual(
    memberships.filter((g) => !standingLeft.includes(g)),
    [],
    "no consultant keeps a request's group, only their standing one",
  );
}
