import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { QUOTA_SIZE_MEMO, statedQuotaSize } from '../src/contracts/memos';
import { sizeOf } from '../src/domain/quotaUsage';
import { sizeIn } from '../src/api/reads/quotaUse';

/**
 * The quota memo read back: the one parser the API's quota count and the cluster sync's size check share. What the
 * writers put there (domain `sizeOf`, at submission and after a day-2 resize) comes back as it was; anything else is
 * no size, and each reader decides what that means (the count: one VM; the sync: nothing to compare).
 */
describe('the quota size memo', () => {
  const memo = (size: unknown) => ({ [QUOTA_SIZE_MEMO]: size, image: { name: 'debian-12' } });

  test('what the writers store reads back unchanged', () => {
    for (const request of [
      { cores: 4, memoryMiB: 8192, diskGiB: 40 },
      { cores: 1, memoryMiB: 512 },
    ]) {
      assert.deepEqual(statedQuotaSize(memo(sizeOf(request))), sizeOf(request));
    }
    // Through Temporal's memo the size is plain JSON.
    assert.deepEqual(statedQuotaSize(JSON.parse(JSON.stringify(memo(sizeOf({ cores: 2, memoryMiB: 2048, diskGiB: 8 })))) as Record<string, unknown>), {
      vms: 1,
      cores: 2,
      memory_mib: 2048,
      disk_gib: 8,
    });
  });

  test('a size without a disk is counted at 0 GiB; a memo whose disk is not a number too', () => {
    assert.deepEqual(statedQuotaSize(memo({ cores: 2, memory_mib: 1024 })), { vms: 1, cores: 2, memory_mib: 1024, disk_gib: 0 });
    assert.deepEqual(statedQuotaSize(memo({ cores: 2, memory_mib: 1024, disk_gib: '8' })), { vms: 1, cores: 2, memory_mib: 1024, disk_gib: 0 });
  });

  test('no memo, no size in it, or one that is not a size: no stated size', () => {
    const notSizes: unknown[] = [undefined, null, 'big', 4, [], {}, { cores: 2 }, { memory_mib: 1024 }, { cores: '2', memory_mib: 1024 }, { cores: 2, memory_mib: Number.NaN }, { cores: Infinity, memory_mib: 1024 }];
    for (const size of notSizes) assert.equal(statedQuotaSize(memo(size)), undefined, JSON.stringify(size) ?? 'undefined');
    assert.equal(statedQuotaSize(undefined), undefined);
    assert.equal(statedQuotaSize({}), undefined);
    assert.equal(statedQuotaSize({ image: { name: 'debian-12' } }), undefined);
  });

  test('the quota count holds one VM for a request whose memo states no size, and its size otherwise', () => {
    assert.deepEqual(sizeIn(undefined), { vms: 1, cores: 0, memory_mib: 0, disk_gib: 0 });
    assert.deepEqual(sizeIn(memo({ cores: 2 })), { vms: 1, cores: 0, memory_mib: 0, disk_gib: 0 });
    assert.deepEqual(sizeIn(memo(sizeOf({ cores: 3, memoryMiB: 3072, diskGiB: 30 }))), { vms: 1, cores: 3, memory_mib: 3072, disk_gib: 30 });
  });
});
