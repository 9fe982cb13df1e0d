import assert from 'node:assert/strict';
import { requestLimits } from '../src/domain/requestLimits';
import { deviceRequestSchema } from '../src/domain/deviceRequest';
import { reconfigureBody } from '../src/contracts/vmOperationSchemas';
import { deviceRequest } from './support/requestDriver';
import { describe, test } from 'node:test';
import type { RequestStatus } from '../src/contracts/types';
import type { OperationCaller, OperationRecord, VmOperation } from '../src/contracts/vmOperations';
import { parseMigrateArgs, parsePowerArgs, parseReconfigureArgs, parseSnapshotArgs } from '../src/contracts/operationArguments';
import { planReconfigure, rebootReason, type VmHardware } from '../src/domain/reconfigurePlan';
import { operationRefusal, type OperationSituation } from '../src/workflows/request/operationRules';

const fulfilled = (over: Partial<OperationSituation> = {}): OperationSituation => ({
  serial: 'VM-OPS01',
  status: 'Fulfilled',
  ending: undefined,
  vmid: 2000,
  node: 'pve1',
  operations: [],
  snapshots: [],
  snapshotLimit: 2,
  size: { org: 'Acme Corp', cores: 2, memoryMiB: 1024 },
  ...over,
});
const rita = (id = 'op-1', role: OperationCaller['role'] = 'requester'): OperationCaller => ({ id, by: 'rita@acme.example', role });
const shutdown: VmOperation = { kind: 'power', action: 'shutdown' };
const running = (over: Partial<OperationRecord> = {}): OperationRecord => ({
  id: 'op-0',
  what: 'migrate to pve2',
  operation: { kind: 'migrate', target: 'pve2' },
  by: 'olga',
  role: 'operator',
  startedAt: '2026-12-03T10:00:00.000Z',
  state: 'running',
  ...over,
});

describe('when a day-2 operation may run', () => {
  test('only on a built VM: the lifecycle table refuses every other state, saying why; and not once a completion is asked', () => {
    const cases: Array<[RequestStatus, string]> = [
      ['Pending', 'it waits for an approval'],
      ['Approved', 'its build has not started yet'],
      ['Imaging', 'its build is running (cancel it, or wait for it to end)'],
      ['Configuring', 'its build is running (cancel it, or wait for it to end)'],
      ['Failed', 'its last build failed (rebuild or complete it)'],
      ['Cancelling', 'its build is being cancelled and is undoing what it made'],
      ['Completing', 'its VM and access are being removed'],
      ['Completed', 'it has ended'],
    ];
    for (const [status, why] of cases) {
      assert.equal(operationRefusal(fulfilled({ status }), rita(), shutdown), `cannot power request VM-OPS01: it is ${status} — ${why}; power only when Fulfilled (power shutdown)`, status);
    }
    assert.equal(operationRefusal(fulfilled(), rita(), shutdown), undefined);
    assert.equal(
      operationRefusal(fulfilled({ ending: 'its completion has been asked for' }), rita(), shutdown),
      'cannot power request VM-OPS01: it is Completing — its VM and access are being removed; power only when Fulfilled (power shutdown; its completion has been asked for)',
    );
  });

  test('migration is for operators; the other operations for every role', () => {
    const migrate: VmOperation = { kind: 'migrate', target: 'pve2' };
    assert.equal(operationRefusal(fulfilled(), rita('m', 'requester'), migrate), 'migrate is for operators only; the caller is a requester');
    assert.equal(operationRefusal(fulfilled(), rita('m', 'admin'), migrate), 'migrate is for operators only; the caller is a admin');
    assert.equal(operationRefusal(fulfilled(), rita('m', 'operator'), migrate), undefined);
    assert.match(operationRefusal(fulfilled(), rita('m', 'operator'), { kind: 'migrate', target: 'pve1' }) ?? '', /is on pve1 already/);
    for (const role of ['requester', 'admin', 'operator'] as const) {
      assert.equal(operationRefusal(fulfilled(), rita('p', role), { kind: 'reconfigure', cores: 4 }), undefined, role);
    }
  });

  test('one at a time: a second operation is refused naming the running one', () => {
    const s = fulfilled({ operations: [running()] });
    assert.equal(operationRefusal(s, rita(), shutdown), 'cannot power shutdown on request VM-OPS01: migrate to pve2 (id op-0, by olga, since 2026-12-03T10:00:00.000Z) is running; one operation at a time');
    assert.equal(operationRefusal(fulfilled({ operations: [running({ state: 'succeeded' })] }), rita(), shutdown), undefined);
  });

  test('the same id again is the same operation (answered once), and an id cannot name a different one', () => {
    const s = fulfilled({ operations: [running()] });
    assert.equal(operationRefusal(s, rita('op-0', 'operator'), { kind: 'migrate', target: 'pve2' }), undefined, 'a retry of the running one is let through to its answer');
    assert.match(operationRefusal(s, rita('op-0'), shutdown) ?? '', /operation id op-0 was already used for migrate to pve2/);
    // Even once the request has moved on: the earlier answer stands.
    assert.equal(operationRefusal({ ...s, status: 'Completing' }, rita('op-0', 'operator'), { kind: 'migrate', target: 'pve2' }), undefined);
  });

  test('snapshots: within the limit, names unique, revert and delete only of the request’s own', () => {
    const snap = (name: string) => ({ name, takenAt: '2026-12-03T10:00:00.000Z', by: 'rita', withRam: false });
    const create = (name: string): VmOperation => ({ kind: 'snapshot', action: 'create', name });
    assert.equal(operationRefusal(fulfilled({ snapshots: [snap('a')] }), rita(), create('b')), undefined);
    assert.match(operationRefusal(fulfilled({ snapshots: [snap('a')] }), rita(), create('a')) ?? '', /already has a snapshot a/);
    assert.equal(operationRefusal(fulfilled({ snapshots: [snap('a'), snap('b')] }), rita(), create('c')), 'request VM-OPS01 has 2 snapshots, its limit (REQUEST_SNAPSHOT_LIMIT) is 2: delete one first');
    assert.match(operationRefusal(fulfilled({ snapshots: [snap('a')] }), rita(), { kind: 'snapshot', action: 'revert', name: 'x' }) ?? '', /has no snapshot x \(it has a\)/);
    assert.equal(operationRefusal(fulfilled({ snapshots: [snap('a')] }), rita(), { kind: 'snapshot', action: 'delete', name: 'a' }), undefined);
  });
});

describe('what a reconfigure takes', () => {
  const vm = (over: Partial<VmHardware> = {}): VmHardware => ({
    running: true,
    cores: 2,
    sockets: 1,
    memoryMiB: 2048,
    numa: false,
    bootDisk: { key: 'scsi0', sizeGiB: 20 },
    ...over,
  });

  test('with Proxmox’s default hotplug, new cores and memory on a running VM wait for a reboot; the disk grows live', () => {
    const plan = planReconfigure(vm(), { cores: 4, memoryMiB: 4096, diskGiB: 40 });
    assert.deepEqual(plan.set, { cores: '4', memory: '4096' });
    assert.deepEqual(plan.live, ['disk 20 → 40 GiB']);
    assert.deepEqual(plan.afterReboot, ['cores 2 → 4', 'memory 2048 → 4096 MiB']);
    assert.deepEqual(plan.grow, { disk: 'scsi0', sizeGiB: 40 });
    assert.equal(rebootReason(vm(), plan), "CPU hot-plug is off in the VM's hotplug option; memory hot-plug is off in the VM's hotplug option");
  });

  test('with cpu and memory hot-plug (and NUMA), CPUs within the topology and more memory apply live', () => {
    const hot = vm({ hotplug: 'network,disk,cpu,memory', numa: true, cores: 8, vcpus: 2 });
    const plan = planReconfigure(hot, { cores: 6, memoryMiB: 8192 });
    assert.deepEqual(plan.set, { vcpus: '6', memory: '8192' });
    assert.deepEqual(plan.afterReboot, []);
    assert.deepEqual(plan.live, ['cores 2 → 6', 'memory 2048 → 8192 MiB']);
    // Beyond the topology, less memory, or no NUMA: a reboot.
    assert.deepEqual(planReconfigure(hot, { cores: 12 }).afterReboot, ['cores 2 → 12']);
    assert.deepEqual(planReconfigure(hot, { cores: 12 }).remove, ['vcpus']);
    assert.deepEqual(planReconfigure(hot, { memoryMiB: 1024 }).afterReboot, ['memory 2048 → 1024 MiB']);
    assert.match(rebootReason({ ...hot, numa: false }, planReconfigure({ ...hot, numa: false }, { memoryMiB: 4096 })), /memory hot-plug needs NUMA on/);
  });

  test('a stopped VM takes every change at once; a disk never shrinks; the same size is nothing to do', () => {
    const plan = planReconfigure(vm({ running: false }), { cores: 4, memoryMiB: 4096 });
    assert.deepEqual(plan.afterReboot, []);
    assert.deepEqual(plan.live, ['cores 2 → 4', 'memory 2048 → 4096 MiB']);
    assert.deepEqual(planReconfigure(vm(), { diskGiB: 10 }).refusal, { field: 'diskGiB', reason: 'the disk is 20 GiB and Proxmox only grows disks: ask for 20 GiB or more' });
    const same = planReconfigure(vm(), { cores: 2, memoryMiB: 2048, diskGiB: 20 });
    assert.deepEqual([same.set, same.live, same.afterReboot, same.grow], [{}, [], [], undefined]);
  });
});

describe('one table of limits (issue 27, finding 4)', () => {
  const base = { id: 'k-1', by: 'rita', role: 'requester' };
  test('a resize is bounded exactly as a submission is: cores, memory and disk', () => {
    const { cores, memoryMiB, diskGiB } = requestLimits;
    const submitted = (o: Record<string, number>) => deviceRequestSchema.safeParse({ ...deviceRequest('VM-LIM01'), ...o }).success;
    const resized = (o: Record<string, number>) => {
      try {
        parseReconfigureArgs({ ...base, ...o });
        return true;
      } catch {
        return false;
      }
    };
    const api = (o: Record<string, number>) =>
      reconfigureBody.safeParse({ ...(o.cores ? { cores: o.cores } : {}), ...(o.memoryMiB ? { memory_mib: o.memoryMiB } : {}), ...(o.diskGiB ? { disk_gib: o.diskGiB } : {}) }).success;
    for (const [field, { min, max }] of [
      ['cores', cores],
      ['memoryMiB', memoryMiB],
      ['diskGiB', diskGiB],
    ] as const) {
      for (const [value, allowed] of [
        [min, true],
        [max, true],
        [max + 1, false],
        [min - 1, false],
      ] as const) {
        const o = { [field]: value };
        assert.deepEqual([submitted(o), resized(o), api(o)], [allowed, allowed, allowed], `${field} ${value}`);
      }
    }
  });
});

describe('a resize within what auto-approval grants (issue 27, finding 4)', () => {
  const auto = { orgs: ['Trusted Org'], maxCores: 4, maxMemoryMiB: 4096 };
  const resize = (cores: number, memoryMiB?: number): VmOperation => ({ kind: 'reconfigure', cores, ...(memoryMiB ? { memoryMiB } : {}), confirmReboot: true });
  test('a requester may not grow a VM past what the policy approves on its own: an admin or operator may, they approve', () => {
    const s = fulfilled({ autoApprove: auto });
    assert.equal(operationRefusal(s, rita(), resize(4, 4096)), undefined);
    assert.equal(
      operationRefusal(s, rita(), resize(16, 65_536)),
      'cannot reconfigure request VM-OPS01 to 16 cores / 65536 MiB: auto-approval grants at most 4 cores / 4096 MiB, and a larger VM needs an approver: an admin or operator may resize it',
    );
    assert.match(operationRefusal(s, rita(), resize(5)) ?? '', /auto-approval grants at most 4 cores/);
    assert.equal(operationRefusal(s, rita('op-1', 'admin'), resize(16, 65_536)), undefined);
    assert.equal(operationRefusal(s, rita('op-1', 'operator'), resize(16, 65_536)), undefined);
  });
  test('shrinking is always the requester’s; a trusted org and a policy without auto-approval leave growth to the quotas', () => {
    assert.equal(operationRefusal(fulfilled({ autoApprove: auto, size: { org: 'Acme Corp', cores: 16, memoryMiB: 65_536 } }), rita(), resize(8, 8192)), undefined);
    assert.equal(operationRefusal(fulfilled({ autoApprove: auto, size: { org: 'Trusted Org', cores: 2, memoryMiB: 1024 } }), rita(), resize(32)), undefined);
    assert.equal(operationRefusal(fulfilled(), rita(), resize(32)), undefined);
  });
});

describe('day-2 update arguments checked inside the workflow', () => {
  const base = { id: 'k-1', by: 'rita', role: 'requester' };
  test('each names the field it refuses', () => {
    assert.deepEqual(parsePowerArgs({ ...base, action: 'reboot' }).operation, { kind: 'power', action: 'reboot' });
    assert.throws(() => parsePowerArgs({ ...base, action: 'hibernate' }), /^TypeError: power: action must be one of start, shutdown, reboot, stop$/);
    assert.throws(() => parsePowerArgs({ ...base, id: 'has space', action: 'stop' }), /power: id must be/);
    assert.throws(() => parsePowerArgs({ ...base, role: 'root', action: 'stop' }), /power: role must be one of requester, admin, operator/);
    assert.throws(() => parseReconfigureArgs({ ...base }), /reconfigure: cores or memoryMiB or diskGiB must be given/);
    assert.throws(() => parseReconfigureArgs({ ...base, cores: 2.5 }), /reconfigure: cores must be a whole number from 1 to 64/);
    assert.throws(() => parseReconfigureArgs({ ...base, memoryMiB: 100 }), /reconfigure: memoryMiB must be a whole number from 512/);
    assert.deepEqual(parseReconfigureArgs({ ...base, diskGiB: 40, confirmReboot: true }).operation, { kind: 'reconfigure', diskGiB: 40, confirmReboot: true });
    assert.throws(() => parseSnapshotArgs({ ...base, action: 'create', name: 'current' }), /snapshot: name must start with a letter/);
    assert.throws(() => parseSnapshotArgs({ ...base, action: 'create', name: '1st' }), /snapshot: name must start with a letter/);
    // Proxmox's pve-configid takes two characters at least: `a` would fail in Proxmox, after the operation started.
    assert.throws(() => parseSnapshotArgs({ ...base, action: 'create', name: 'a' }), /snapshot: name must start with a letter/);
    assert.throws(() => parseSnapshotArgs({ ...base, action: 'create', name: `a${'b'.repeat(40)}` }), /snapshot: name must start with a letter/);
    assert.equal(parseSnapshotArgs({ ...base, action: 'create', name: `a${'b'.repeat(39)}` }).operation.kind, 'snapshot');
    assert.equal(parseSnapshotArgs({ ...base, action: 'create', name: 'ab' }).operation.kind, 'snapshot');
    assert.deepEqual(parseSnapshotArgs({ ...base, action: 'create', name: 'before-upgrade', withRam: true }).operation, { kind: 'snapshot', action: 'create', name: 'before-upgrade', withRam: true });
    assert.throws(() => parseMigrateArgs({ ...base, target: 'pve 2' }), /migrate: target must be a node name/);
  });
});
