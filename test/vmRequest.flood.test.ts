import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { completeUpdate, extendUpdate, powerUpdate } from '../src/contracts/messages';
import type { SimulatedWorld } from '../src/simulators/world';
import { TIMELINE_ENTRIES_KEPT, TIMELINE_TEXT_MAX } from '../src/workflows/request/bounds';
import { useWorkflowHarness } from './support/workflowHarness';
import { requestDriver } from './support/requestDriver';
import { waitFor } from './support/waitFor';

/**
 * Finding 1 of issue 27: any key of the org could break a request for good. Every note went on the timeline, which
 * continue-as-new carried whole: ~1,500 extends with 2,000-character notes made the record larger than Temporal's
 * payload limit, every workflow task failed, and the lease-end cleanup never ran. Here one request is flooded from
 * several keys, on a dev server (real payload limits, real continue-as-new), and must keep answering, extend,
 * complete, and remove its VM.
 */
const KEYS = ['alice@consultancy.example', 'bob@consultancy.example', 'carol@acme.example', 'dave@acme.example'];
const EXTENDS_PER_KEY = 500;
const MAX_NOTE = 'n'.repeat(2000);
const MINUTE = 60_000;

describe('a request flooded with updates (dev server)', () => {
  const harness = useWorkflowHarness();
  let world: SimulatedWorld;

  test('thousands of maximum-size notes from several keys: the request keeps answering, extends, completes and removes its VM', { timeout: 600_000 }, async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    world = await harness.h.world();
    const server = await harness.h.localEnv();
    const serial = 'VM-FLOOD';
    const queue = `flood-${serial}`;
    await harness.h.withWorker(
      world,
      queue,
      async () => {
        const driver = requestDriver(server.client, queue);
        const request = await harness.h.request(serial, { periodDays: 10 }, server);
        const r = await driver.startApproved(request);
        const fulfilled = await r.waitForStatus('Fulfilled', { timeoutMs: 60_000 });
        const vmid = fulfilled.device.vmid!;
        const firstRun = (await r.handle.describe()).runId;
        assert.ok(world.pve.dump().vms.some((v) => v.vmid === vmid));

        // Every key extends by a minute at a time, in parallel with the others, each with the longest note allowed.
        const baseEnd = Date.parse(request.period.end);
        let step = 0;
        await Promise.all(
          KEYS.map(async (by) => {
            for (let i = 0; i < EXTENDS_PER_KEY; i++) {
              const newEnd = new Date(baseEnd + ++step * MINUTE).toISOString();
              await r.handle.executeUpdate(extendUpdate, { args: [{ by, newEnd, note: MAX_NOTE }] });
            }
          }),
        );
        // Day-2 operations with maximum notes too: their records are bounded, and they go on the timeline as well.
        for (let i = 0; i < 30; i++) {
          await r.handle.executeUpdate(powerUpdate, { args: [{ id: `flood-${i}`, by: KEYS[i % KEYS.length]!, role: 'requester', note: MAX_NOTE, action: i % 2 ? 'start' : 'stop' }] });
        }

        // Still answering, with a bounded record that still says where it began and what happened last.
        const record = await r.record();
        assert.notEqual((await r.handle.describe()).runId, firstRun, 'the flood made the request continue as new');
        assert.equal(record.status, 'Fulfilled');
        assert.ok(record.timeline.length <= TIMELINE_ENTRIES_KEPT, `the timeline holds ${record.timeline.length} entries`);
        assert.ok(
          record.timeline.every((e) => e.event.length <= TIMELINE_TEXT_MAX),
          'no timeline entry is longer than the bound',
        );
        assert.match(record.timeline[0]!.event, /^submitted by /);
        const summary = record.timeline[1]!;
        assert.match(summary.event, /^\d+ earlier entries summarised, from .* by /);
        assert.ok(summary.summarises! > 1000, `the summary stands for ${summary.summarises} entries`);
        assert.ok((record.operations ?? []).length <= 20);
        assert.ok(JSON.stringify(record).length < 512 * 1024, `the record is ${JSON.stringify(record).length} bytes`);
        assert.equal(record.request.period.end, new Date(baseEnd + step * MINUTE).toISOString());

        // It still extends, and completes: its VM is removed.
        const later = new Date(baseEnd + (step + 10) * MINUTE).toISOString();
        assert.equal((await r.handle.executeUpdate(extendUpdate, { args: [{ by: KEYS[0]!, newEnd: later, note: MAX_NOTE }] })).periodEnd, later);
        await r.handle.executeUpdate(completeUpdate, { args: [{ by: KEYS[1]!, note: MAX_NOTE }] });
        const done = await r.handle.result();
        assert.equal(done.status, 'Completed');
        await waitFor(`VM ${vmid} removed`, async () => !world.pve.dump().vms.some((v) => v.vmid === vmid) || undefined, 30_000);
      },
      server,
    );
  });
});
