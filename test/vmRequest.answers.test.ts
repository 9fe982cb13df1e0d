import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import type { SimulatedWorld } from '../src/simulators/world';
import { cancelUpdate, completeUpdate, extendUpdate, rebuildUpdate, rejectUpdate, revealCredentialsUpdate } from '../src/contracts/messages';
import { BuildStatusKey, RequestStatusKey } from '../src/contracts/searchAttributes';
import { DAY, useWorkflowHarness } from './support/workflowHarness';
import { requestDriver } from './support/requestDriver';

/**
 * Each Update answers with the request as the action left it, once it took effect — not as it was before: a cancel
 * of a running build says Cancelling, an approval says which build it queued (or when it will be built), a rebuild
 * answers the new build, a completion says Completing. On the time-skipping server, the real activities against
 * the simulators.
 */

describe('vmRequest: what each update answers', () => {
  const harness = useWorkflowHarness();
  let world: SimulatedWorld;
  let n = 0;

  before(async () => {
    // The clone is held open long enough to cancel the build in it.
    if (!harness.skipped) world = await harness.h.world({ linkedCloneMs: 2_000 });
  });

  const start = async (serial: string, startsInDays = 0) => {
    const request = await harness.h.request(serial);
    if (startsInDays) {
      const startsAt = Date.parse(request.period.start) + startsInDays * DAY;
      request.period = { start: new Date(startsAt).toISOString(), end: new Date(startsAt + 7 * DAY).toISOString() };
    }
    return { ...(await requestDriver(harness.h.env.client, `answers-${serial}`).startPending(request)), request };
  };
  const serialNext = () => `VM-AN${String(++n).padStart(3, '0')}`;

  test('approve answers Approved with build 1 queued; cancel during the clone answers Cancelling; rebuild answers build 2; complete answers Completing', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const serial = serialNext();
    await harness.h.withWorker(world, `answers-${serial}`, async () => {
      const { handle, approve, record: recordNow, waitForStatus, waitForBuildStage } = await start(serial);
      assert.deepEqual(await approve('ada'), { serial, status: 'Approved', build: { attempt: 1, state: 'queued' } });

      await waitForBuildStage('cloning');
      const cancelling = await handle.executeUpdate(cancelUpdate, { args: [{ by: 'ada', note: 'wrong size' }] });
      assert.deepEqual(cancelling, { serial, status: 'Cancelling', build: { attempt: 1, state: 'cancelling' } });
      // What the answer says is what the record and Temporal's search attributes say, until the undos are done.
      const during = await recordNow();
      assert.ok(['Cancelling', 'Cancelled'].includes(during.status), during.status);
      await assert.rejects(handle.executeUpdate(cancelUpdate, { args: [{ by: 'ada' }] }), (err: Error) => /cannot cancel|already under way/.test(String((err.cause as Error)?.message)));
      const cancelled = await waitForStatus('Cancelled');
      assert.equal(cancelled.build?.state, 'cancelled');
      assert.equal(cancelled.device.vmid, undefined);
      assert.ok(cancelled.timeline.some((e) => e.event === 'cancel requested: wrong size' && e.by === 'ada'));
      assert.ok(
        !cancelled.timeline.some((e) => /^build 1: (provisioning|configuring)/.test(e.event) && e.at > cancelled.timeline.find((x) => x.event.startsWith('cancel requested'))!.at),
        'a late phase does not undo Cancelling',
      );

      // A rebuild of a Cancelled request answers the build it started, not "Cancelled".
      const rebuilt = await handle.executeUpdate(rebuildUpdate, { args: [{ by: 'ada' }] });
      assert.deepEqual(rebuilt, { serial, status: 'Imaging', build: { attempt: 2, state: 'queued' } });
      const fulfilled = await waitForStatus('Fulfilled');
      assert.equal(fulfilled.build?.attempt, 2);

      const end = new Date(Date.parse(fulfilled.request.period.end) + 2 * DAY).toISOString();
      assert.deepEqual(await handle.executeUpdate(extendUpdate, { args: [{ by: 'rita', newEnd: end }] }), {
        serial,
        status: 'Fulfilled',
        build: { attempt: 2, state: 'completed' },
        periodEnd: end,
      });

      // The logins, with what handing them over did: to whom, when and until when they may be fetched again, as the record now says.
      const revealed = await handle.executeUpdate(revealCredentialsUpdate, { args: [{ by: 'alice@consultancy.example' }] });
      assert.equal(revealed.revealedTo, 'alice@consultancy.example');
      // Sealed under the request's credential key (crypto-shredding): the API opens them, no history can.
      assert.ok(revealed.keyId && revealed.ciphertext && revealed.iv && revealed.tag);
      assert.ok(!('password' in revealed) && !('rootPassword' in revealed), 'no login in clear in the answer');
      const afterReveal = await recordNow();
      assert.ok(revealed.refetchUntil, 'the answer says until when the same consultant may fetch them again');
      assert.deepEqual(afterReveal.credentials, { available: false, revealedTo: 'alice@consultancy.example', revealedAt: revealed.revealedAt, refetchUntil: revealed.refetchUntil });

      assert.deepEqual(await handle.executeUpdate(completeUpdate, { args: [{ by: 'rita' }] }), { serial, status: 'Completing', build: { attempt: 2, state: 'completed' } });
      const done = await handle.result();
      assert.equal(done.status, 'Completed');
      assert.equal(done.device.vmid, undefined, 'no VMID once the VM is destroyed');
      assert.equal(done.device.ip, undefined);
      const sa = (await handle.describe()).typedSearchAttributes;
      assert.equal(sa.get(RequestStatusKey), 'Completed');
      assert.equal(sa.get(BuildStatusKey), 'completed');
    });
  });

  test('approve before the period answers when it will be built; cancel then answers Cancelled; complete answers Completing; reject answers Rejected', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const serial = serialNext();
    const other = serialNext();
    await harness.h.withWorker(world, `answers-${serial}`, async () => {
      const { handle, request, approve, record: recordNow } = await start(serial, 7);
      assert.deepEqual(await approve('ada'), { serial, status: 'Approved', buildsAt: request.period.start });
      assert.deepEqual(await handle.executeUpdate(cancelUpdate, { args: [{ by: 'ada' }] }), { serial, status: 'Cancelled' });
      const record = await recordNow();
      assert.equal(record.build, undefined, 'nothing was built');
      assert.deepEqual(await handle.executeUpdate(completeUpdate, { args: [{ by: 'ada' }] }), { serial, status: 'Completing' });
      assert.equal((await handle.result()).status, 'Cancelled');
    });
    await harness.h.withWorker(world, `answers-${other}`, async () => {
      const { handle } = await start(other, 7);
      assert.deepEqual(await handle.executeUpdate(rejectUpdate, { args: [{ by: 'ada', reason: 'no budget' }] }), { serial: other, status: 'Rejected' });
      assert.equal((await handle.result()).status, 'Rejected');
    });
  });
});
