import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { RequestPolicy } from '../src/domain/requestPolicy';
import { defaultRequestPolicy } from '../src/domain/requestPolicyRules';
import type { SimulatedWorld } from '../src/simulators/world';
import { extendUpdate } from '../src/contracts/messages';
import { DAY, useWorkflowHarness } from './support/workflowHarness';
import { requestDriver } from './support/requestDriver';

/** The request as a lease, in skipped time: expiry, auto-approval, a start days ahead, extension and the end notice. */
const HOUR = 3600_000;

describe('vmRequest lifecycle (time-skipping)', () => {
  const harness = useWorkflowHarness();
  let world: SimulatedWorld;
  let notices: Array<Record<string, unknown>> = [];
  let noticeServer: Server;
  let noticeUrl: string;

  before(async () => {
    if (harness.skipped) return;
    world = await harness.h.world();
    noticeServer = createServer((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        notices.push(JSON.parse(body));
        res.end();
      });
    });
    await new Promise<void>((ok) => noticeServer.listen(0, '127.0.0.1', ok));
    noticeUrl = `http://127.0.0.1:${(noticeServer.address() as AddressInfo).port}/lease`;
  });
  after(() => {
    noticeServer?.close();
  });

  const vmsOf = (serial: string) => world.pve.dump().vms.filter((v) => String(v.config.description ?? '').includes(serial));

  test('a request nobody approves expires after the policy time and builds nothing', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const serial = 'VM-LC001';
    await harness.h.withWorker(world, `lc-${serial}`, async () => {
      const policy: RequestPolicy = { ...defaultRequestPolicy, pendingExpiryHours: 48 };
      const started = await harness.h.env.currentTimeMs();
      const { handle } = await requestDriver(harness.h.env.client, `lc-${serial}`).startPending(await harness.h.request(serial), { policy });
      const record = await handle.result();
      assert.equal(record.status, 'Expired');
      assert.match(record.timeline.at(-1)!.event, /not approved within 48 h/);
      assert.ok((await harness.h.env.currentTimeMs()) - started >= 48 * HOUR);
      assert.equal(vmsOf(serial).length, 0);
    });
  });

  test('the policy approves a trusted org without an admin', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const serial = 'VM-LC002';
    await harness.h.withWorker(world, `lc-${serial}`, async () => {
      const policy: RequestPolicy = { ...defaultRequestPolicy, autoApprove: { orgs: ['Acme Corp'], maxCores: 0, maxMemoryMiB: 0 } };
      const { handle } = await requestDriver(harness.h.env.client, `lc-${serial}`).startPending(await harness.h.request(serial, { periodDays: 2 }), { policy });
      const record = await handle.result(); // built, then the 2-day lease runs out in skipped time
      assert.equal(record.timeline[1]!.event, 'auto-approved: org Acme Corp is trusted');
      assert.equal(record.timeline[1]!.by, 'policy');
      assert.ok(record.timeline.some((e) => e.event.startsWith('build 1 completed')));
      assert.equal(record.status, 'Completed');
    });
  });

  test('a request starting a week ahead is built a week later, extended, noticed and completed at its new end', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const serial = 'VM-LC003';
    notices = [];
    await harness.h.withWorker(world, `lc-${serial}`, async () => {
      const policy: RequestPolicy = { ...defaultRequestPolicy, maxLeaseDays: 30, endNoticeHours: 24, noticeWebhookUrl: noticeUrl };
      const t0 = await harness.h.env.currentTimeMs();
      const start = t0 + 7 * DAY;
      const end = start + 7 * DAY;
      const request = await harness.h.request(serial);
      request.period = { start: new Date(start).toISOString(), end: new Date(end).toISOString() };
      const { handle, record: recordNow, waitForStatus } = await requestDriver(harness.h.env.client, `lc-${serial}`).startApproved(request, { policy });

      await harness.h.env.sleep(6 * DAY);
      assert.equal((await recordNow()).status, 'Approved', 'nothing is built before the period starts');
      assert.equal(vmsOf(serial).length, 0);
      await harness.h.env.sleep(DAY + HOUR);
      const fulfilled = await waitForStatus('Fulfilled');
      assert.equal(vmsOf(serial).length, 1);

      const refusals: Array<[string, RegExp]> = [
        [new Date(t0).toISOString(), /in the past/],
        [new Date(start + 31 * DAY).toISOString(), /at most 30 days/],
      ];
      for (const [newEnd, why] of refusals) {
        await assert.rejects(handle.executeUpdate(extendUpdate, { args: [{ by: 'rita', newEnd }] }), (err: Error) => why.test(String((err.cause as Error)?.message)));
      }
      await assert.rejects(handle.executeUpdate(extendUpdate, { args: [{ by: 'rita', newEnd: 'next friday' }] }));
      const newEnd = new Date(end + 3 * DAY).toISOString();
      await handle.executeUpdate(extendUpdate, { args: [{ by: 'rita', newEnd, note: 'report writing' }] });

      const record = await handle.result();
      assert.equal(record.status, 'Completed');
      assert.ok((await harness.h.env.currentTimeMs()) >= Date.parse(newEnd), 'the lease lasted until the extended end');
      assert.equal(record.request.period.end, newEnd);
      assert.ok(record.timeline.some((e) => e.event.startsWith(`lease end moved from ${new Date(end).toISOString()} to ${newEnd}`) && e.by === 'rita'));
      assert.ok(record.timeline.some((e) => e.event === 'the period ended' || e.event === 'completing on request'));
      assert.deepEqual(
        notices.map((n) => [n.serial, n.periodEnd]),
        [[serial, newEnd]],
        'one notice, for the extended end',
      );
      assert.equal(vmsOf(serial).length, 0);
      assert.ok(fulfilled.device.vmid);
    });
  });
});
