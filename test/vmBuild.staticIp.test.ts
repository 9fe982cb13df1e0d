import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../src/config';
import type { SimulatedWorld } from '../src/simulators/world';
import { addressLeasesQuery } from '../src/contracts/ipPoolMessages';
import { completeUpdate } from '../src/contracts/messages';
import type { RequestRecord } from '../src/contracts/types';
import { useWorkflowHarness } from './support/workflowHarness';
import { requestDriver } from './support/requestDriver';
import { ipPoolWorkflowId } from '../src/contracts/workflowIds';

/**
 * Static addresses from a pool with exclusions (PVE_IP_POOL, PVE_IP_GATEWAY, PVE_IP_EXCLUDE): each VM gets the lowest
 * free address as `ipconfig0`, the guest comes up with it, the address returns to the pool when the VM is destroyed,
 * and an exhausted pool fails the build with what to do, leaving nothing behind.
 */

describe('static addresses from a pool', () => {
  const harness = useWorkflowHarness();

  test('a pool the configuration cannot use is refused at start-up, saying why', () => {
    const base = { PVE_IP_POOL: '10.77.0.0/29', PVE_IP_GATEWAY: '10.77.0.1' };
    assert.ok(loadConfig(base).PVE_IP_POOL);
    const refusal = (env: Record<string, string>) => {
      try {
        loadConfig(env);
        return 'accepted';
      } catch (err) {
        assert.ok(err instanceof ConfigError);
        return err.message;
      }
    };
    assert.match(refusal({ ...base, PVE_IP_GATEWAY: '10.78.0.1' }), /PVE_IP_GATEWAY 10\.78\.0\.1 is not inside PVE_IP_POOL/);
    assert.match(refusal({ PVE_IP_POOL: '10.77.0.0/29' }), /PVE_IP_GATEWAY must be/);
    assert.match(refusal({ ...base, PVE_IP_POOL: '10.77.0.4/29' }), /did you mean 10\.77\.0\.0\/29/);
    assert.match(refusal({ ...base, PVE_IP_EXCLUDE: '10.77.0.2-10.77.0.6' }), /leaves no address/);
    assert.match(refusal({ ...base, PVE_IP_EXCLUDE: '10.77.0.9x' }), /PVE_IP_EXCLUDE 10\.77\.0\.9x: not an IPv4 address/);
    assert.match(refusal({ PVE_IP_GATEWAY: '10.77.0.1' }), /without PVE_IP_POOL/);
  });

  // 10.77.0.0/29: .1 is the gateway, .2 and .5 are used outside pveflow; .3, .4 and .6 are the pool's.
  const pool = { PVE_IP_POOL: '10.77.0.0/29', PVE_IP_GATEWAY: '10.77.0.1', PVE_IP_EXCLUDE: '10.77.0.2,10.77.0.5' };

  async function settle(serial: string, taskQueue: string): Promise<RequestRecord> {
    const request = await harness.h.request(serial);
    const driven = await requestDriver(harness.h.env.client, taskQueue).startApproved(request);
    return driven.waitForStatus(['Fulfilled', 'Failed'], { timeoutMs: 120_000 });
  }
  const ipconfigOf = (world: SimulatedWorld, vmid: number | undefined) => world.pve.dump().vms.find((v) => v.vmid === vmid)?.config.ipconfig0;

  test('each VM gets the lowest free address, keeps it while it lives, and gives it back when destroyed', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const world = await harness.h.world({}, pool);
    const taskQueue = 'static-ip';
    await harness.h.withWorker(world, taskQueue, async () => {
      const first = await settle('VM-IP001', taskQueue);
      assert.equal(first.status, 'Fulfilled', first.build?.error);
      assert.equal(first.device.ip, '10.77.0.3', 'the guest came up with its static address');
      assert.equal(ipconfigOf(world, first.device.vmid), 'ip=10.77.0.3/29,gw=10.77.0.1');
      assert.ok(first.build?.log.some((l) => l.message === 'static address 10.77.0.3 leased from the pool'));

      const second = await settle('VM-IP002', taskQueue);
      assert.equal(second.device.ip, '10.77.0.4', '.5 is excluded, .3 is taken');

      const { handle: firstHandle } = requestDriver(harness.h.env.client, taskQueue).existing('VM-IP001');
      await firstHandle.executeUpdate(completeUpdate, { args: [{ by: 'admin' }] });
      await firstHandle.result();
      const leases = await harness.h.env.client.workflow.getHandle(ipPoolWorkflowId(taskQueue)).query(addressLeasesQuery);
      assert.deepEqual(leases, [{ serial: 'VM-IP002', address: '10.77.0.4' }], 'completion gave .3 back');

      const third = await settle('VM-IP003', taskQueue);
      assert.equal(third.device.ip, '10.77.0.3', 'the freed address is handed out again');
      const fourth = await settle('VM-IP004', taskQueue);
      assert.equal(fourth.device.ip, '10.77.0.6');

      const fifth = await settle('VM-IP005', taskQueue);
      assert.equal(fifth.status, 'Failed');
      assert.equal(fifth.build?.stage, 'configuring');
      assert.match(fifth.build?.error ?? '', /no free address in 10\.77\.0\.0\/29 for request VM-IP005: all 3 addresses outside PVE_IP_EXCLUDE are leased\. Complete requests/);
      assert.deepEqual(fifth.build?.leftovers, [], 'its undo removed what it made');
      assert.equal(world.pve.dump().vms.filter((v) => String(v.config.description ?? '').includes('VM-IP005')).length, 0);
    });
  });
});
