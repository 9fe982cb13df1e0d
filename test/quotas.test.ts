import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadConfig, ConfigError } from '../src/config';
import { add, excessOf, holdsQuota, noUsage, quotaFor, sizeOf, times } from '../src/domain/quotas';

/** The quota rules without Temporal: which requests hold quota, which quota a demand passes, the config's shape. */
describe('quotas', () => {
  test('an org gets its own entry, else the * entry, else none', () => {
    const config = { 'Acme Corp': { vms: 2 }, '*': { cores: 8 } };
    assert.deepEqual(quotaFor(config, 'Acme Corp'), { vms: 2 });
    assert.deepEqual(quotaFor(config, 'Globex'), { cores: 8 });
    assert.equal(quotaFor({ 'Acme Corp': { vms: 2 } }, 'Globex'), undefined);
  });

  test('the first quota the demand would pass is named with its use, the ask and the limit; a limit left out bounds nothing', () => {
    const use = add(sizeOf({ cores: 4, memoryMiB: 4096 }), sizeOf({ cores: 2, memoryMiB: 2048, diskGiB: 50 }));
    assert.deepEqual(use, { vms: 2, cores: 6, memory_mib: 6144, disk_gib: 50 });
    const demand = times(sizeOf({ cores: 4, memoryMiB: 1024, diskGiB: 20 }), 2);
    assert.equal(excessOf('Acme Corp', { vms: 4, cores: 14, memory_mib: 8192, disk_gib: 90 }, use, demand), undefined, 'exactly at the limits fits');
    assert.deepEqual(excessOf('Acme Corp', { vms: 4, cores: 13 }, use, demand), { org: 'Acme Corp', quota: 'cores', use: 6, asked: 8, limit: 13 });
    assert.deepEqual(excessOf('Acme Corp', { memory_mib: 8191 }, use, demand)?.quota, 'memory_mib');
    assert.deepEqual(excessOf('Acme Corp', { disk_gib: 89 }, use, demand)?.quota, 'disk_gib');
    assert.equal(excessOf('Acme Corp', {}, use, demand), undefined);
    assert.equal(excessOf('Acme Corp', undefined, use, demand), undefined);
    assert.deepEqual(excessOf('Acme Corp', { vms: 0 }, noUsage, sizeOf({ cores: 1, memoryMiB: 512 })), { org: 'Acme Corp', quota: 'vms', use: 0, asked: 1, limit: 0 });
  });

  test('every status holds quota but Rejected, Expired, Completed and Cancelled', () => {
    for (const status of ['Pending', 'Approved', 'Imaging', 'Provisioning', 'Configuring', 'Fulfilled', 'Failed', 'Cancelling', 'Completing', undefined]) assert.equal(holdsQuota(status), true, String(status));
    for (const status of ['Rejected', 'Expired', 'Completed', 'Cancelled']) assert.equal(holdsQuota(status), false, status);
  });

  test('PVEFLOW_QUOTAS is JSON of orgs to limits; anything else stops the start-up naming the setting', () => {
    assert.deepEqual(loadConfig({}).PVEFLOW_QUOTAS, {});
    assert.deepEqual(loadConfig({ PVEFLOW_QUOTAS: '{"Acme Corp":{"vms":3,"disk_gib":100},"*":{"cores":4}}' }).PVEFLOW_QUOTAS, { 'Acme Corp': { vms: 3, disk_gib: 100 }, '*': { cores: 4 } });
    for (const bad of ['{not json', '{"Acme Corp":{"vm":3}}', '{"Acme Corp":{"vms":-1}}', '{"Acme Corp":{"cores":1.5}}']) {
      assert.throws(
        () => loadConfig({ PVEFLOW_QUOTAS: bad }),
        (err: unknown) => err instanceof ConfigError && /PVEFLOW_QUOTAS/.test(err.message),
        bad,
      );
    }
  });
});
