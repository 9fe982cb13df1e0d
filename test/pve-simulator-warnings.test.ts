import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { zeroTiming } from '../src/simulators/pve';
import { startPveHarness, type PveHarness } from '../src/simulators/pve/harness';

/** `WARNINGS: n` is a success (UPID.pm status_is_error): tasks that warn, as real operations do. */

describe('tasks that end with warnings', () => {
  let h: PveHarness;
  before(async () => {
    h = await startPveHarness({ timing: { ...zeroTiming, flockTimeoutMs: 200 } });
    const clone = await h.task('POST', '/nodes/pve1/qemu/9000/clone', { form: { newid: '150', pool: 'pveflow', name: 'uefi' } });
    assert.equal(clone.exitstatus, 'OK');
  });
  after(() => h.close());

  test('starting a UEFI VM without an EFI disk warns, ends WARNINGS: 1 and the VM runs', async () => {
    const set = await h.call('PUT', '/nodes/pve1/qemu/150/config', { form: { bios: 'ovmf' } });
    assert.equal(set.status, 200, set.raw);
    const start = await h.task('POST', '/nodes/pve1/qemu/150/status/start');
    assert.equal(start.exitstatus, 'WARNINGS: 1');
    const log = await h.call('GET', `/nodes/pve1/tasks/${encodeURIComponent(start.upid)}/log`);
    const lines = (log.body!.data as Array<{ t: string }>).map((l) => l.t);
    assert.ok(lines.includes('WARN: no efidisk configured! Using temporary efivars disk.'), lines.join('\n'));
    assert.equal(lines.at(-1), 'TASK WARNINGS: 1');
    const status = await h.call('GET', '/nodes/pve1/qemu/150/status/current');
    assert.equal((status.body!.data as { status: string }).status, 'running');
  });

  test('the taskWarnings fault makes a matching task end WARNINGS: n', async () => {
    h.sim.faults.set({ taskWarnings: { type: 'qmstop', vmid: 150, count: 2, times: 1 } });
    const stop = await h.task('POST', '/nodes/pve1/qemu/150/status/stop');
    assert.equal(stop.exitstatus, 'WARNINGS: 2');
    const again = await h.task('POST', '/nodes/pve1/qemu/150/status/stop');
    assert.equal(again.exitstatus, 'OK', 'times: 1 is used up');
  });
});
