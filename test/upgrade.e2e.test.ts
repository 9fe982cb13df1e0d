import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { generateApiKey } from '../src/api/auth/apiKeys';
import { cloneSlotsWorkflowId, ipPoolWorkflowId, syncScheduleId } from '../src/contracts/workflowIds';
import { startEmbeddedStack, type EmbeddedStack } from '../src/embedded/stack';
import { requireTemporalBinary } from '../src/temporal/binaries';
import { pveflow } from './support/cliRunner';
import { freePort } from './support/ports';
import { installPreviousRelease, startPreviousRelease, type RunningPreviousRelease } from './support/previousRelease';
import { validRequestBody } from './support/requests';
import { waitFor } from './support/waitFor';
import { workflowTaskFailures, type WorkflowTaskFailure } from './support/workflowTaskFailures';

/**
 * The upgrade a deployment lives through: the previous release (release.json) runs the embedded default and leaves
 * requests in every state that matters, stops, and this checkout starts on the same DATA_DIR (the same Temporal
 * SQLite file, simulated world, codec key and task queue). Every request is then carried to its end through this
 * release's API and CLI: no workflow task may fail (a workflow change not behind `patched()` fails here, said so),
 * no request may be lost, each fulfilled request has exactly one VM, and nothing is left in Proxmox or NetBird.
 * How it works and how to move release.json: docs/versioning.md, "The upgrade test".
 */
const HOUR = 3600_000;
const CLONE_ROUTE = 'POST /nodes/{node}/qemu/{vmid}/clone';
const SNAPSHOT_ROUTE = 'POST /nodes/{node}/qemu/{vmid}/snapshot';
const GUEST_IP_ROUTE = 'GET /nodes/{node}/qemu/{vmid}/agent/network-get-interfaces';
const SHUTDOWN_ROUTE = 'POST /nodes/{node}/qemu/{vmid}/status/shutdown';
/** Long enough to outlast the previous release: the held call is still waiting when it stops. */
const HOLD_MS = 10 * 60_000;

const keys = {
  requester: { id: 'rita', role: 'requester', org: 'Acme Corp', email: 'rita@acme.example', key: generateApiKey() },
  admin: { id: 'ada', role: 'admin', org: 'Acme Corp', email: 'admin@acme.example', key: generateApiKey() },
  operator: { id: 'ops', role: 'operator', key: generateApiKey() },
};
type Actor = keyof typeof keys;

const dataDir = mkdtempSync(join(tmpdir(), 'pveflow-upgrade-'));
let previous: RunningPreviousRelease | undefined;
let current: EmbeddedStack | undefined;
let apiUrl = '';
const startedAt = Date.now();
/** When the previous release had exited: what it started was started before. */
let stoppedAt = new Date(0);
let stepNo = 0;

after(async () => {
  await previous?.stop(60_000);
  await current?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

const say = (line: string) => console.log(`[upgrade ${((Date.now() - startedAt) / 1000).toFixed(1)} s] ${line}`);
async function step<T>(what: string, run: () => Promise<T>): Promise<T> {
  const t0 = Date.now();
  say(`step ${++stepNo}: ${what}`);
  const result = await run();
  say(`step ${stepNo} done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return result;
}

async function api(method: string, path: string, as: Actor = 'operator', body?: unknown, timeoutMs = 30_000) {
  const res = await fetch(`${apiUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${keys[as].key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.text();
  return { status: res.status, body: text && /json/.test(res.headers.get('content-type') ?? '') ? JSON.parse(text) : text };
}

const record = async (serial: string) => {
  const r = await api('GET', `/api/device_requests/${serial}`);
  assert.equal(r.status, 200, `GET ${serial}: ${JSON.stringify(r.body)}`);
  return r.body;
};

/** Waits for `serial` to reach one of `statuses` (Failed ends the wait at once, with its build's error). */
async function statusOf(serial: string, statuses: string[], timeoutMs = 120_000) {
  const seen = await waitFor(
    `${serial} ${statuses.join(' or ')}`,
    async () => {
      const r = await record(serial);
      return statuses.includes(r.status) || r.status === 'Failed' ? r : undefined;
    },
    timeoutMs,
    300,
  );
  assert.ok(statuses.includes(seen.status), `${serial} is ${seen.status}, not ${statuses.join(' or ')}: ${JSON.stringify(seen.build ?? seen.timeline)}`);
  return seen;
}

const submit = async (body: Record<string, unknown>) => {
  const r = await api('POST', '/api/device_requests', 'requester', body);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return String(r.body.serial);
};
const approve = async (serial: string) => {
  const r = await api('POST', `/api/device_requests/${serial}/approve`, 'admin', {});
  assert.equal(r.status, 200, `approve ${serial}: ${JSON.stringify(r.body)}`);
};

/** The CLI of this checkout, as an operator runs it against the API; asserts exit 0 and returns its JSON. */
async function cli(...args: string[]) {
  const run = await pveflow([...args, '--json'], { PVEFLOW_API_URL: apiUrl, PVEFLOW_API_KEY: keys.operator.key });
  assert.equal(run.code, 0, `pveflow ${args.join(' ')}: exit ${run.code}\n${run.stderr}${run.stdout}`);
  return run.stdout.trim() ? JSON.parse(run.stdout) : undefined;
}

/** The verdict on the histories: a non-determinism error means a workflow change is not behind patched(). */
function failureReport(failures: WorkflowTaskFailure[]): string {
  const nondeterministic = failures.filter((f) => f.nonDeterminism);
  return [
    ...nondeterministic.map((f) => `a workflow change is not behind patched(): ${f.workflowId}: ${f.message} (see docs/versioning.md)`),
    ...failures.filter((f) => !f.nonDeterminism).map((f) => `workflow task failed: ${f.workflowId}: ${f.cause}: ${f.message}`),
  ].join('\n');
}

/**
 * Runs a phase of the current release; a wait that fails, or a workflow task that fails meanwhile, is judged by the
 * histories: a request stuck on a non-determinism error never moves again, so the wait alone would only time out.
 */
async function judged<T>(what: string, run: () => Promise<T>): Promise<T> {
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      const failures = await workflowTaskFailures(current!.client).catch(() => []);
      if (failures.length) throw new Error(`${what}: ${failureReport(failures)}`);
      await new Promise((r) => setTimeout(r, 3_000));
    }
  })();
  try {
    return await Promise.race([run(), watcher as Promise<never>]);
  } catch (err) {
    // A query replays the history too, and can fail on the same divergence before the workflow task records it.
    const failures = await waitFor(
      'a failed workflow task to explain the failure',
      async () => {
        const found = await workflowTaskFailures(current!.client);
        return found.length ? found : undefined;
      },
      15_000,
      1_000,
    ).catch(() => []);
    if (failures.length) throw new Error(`${what}: ${failureReport(failures)}\n(while: ${(err as Error).message})`, { cause: err });
    throw err;
  } finally {
    watching = false;
    await watcher.catch(() => undefined);
  }
}

test('requests started by the previous release, in every state, are carried to their end by this release', { timeout: 600_000 }, async () => {
  requireTemporalBinary('temporal');
  const release = await step('install the previous release (cached under .tools/previous-release/)', async () => installPreviousRelease(say));
  const ports = { TEMPORAL_PORT: await freePort(), TEMPORAL_UI_PORT: await freePort(), API_PORT: await freePort(), SIM_PVE_PORT: await freePort(), SIM_NETBIRD_PORT: await freePort() };
  // One deployment: what the operator configured stays the same across the upgrade.
  const settings: Record<string, string> = {
    DATA_DIR: dataDir,
    ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])),
    API_HOST: '127.0.0.1',
    TEMPORAL_TASK_QUEUE: `upgrade-${process.pid}`,
    SIM_TIMING: 'fast',
    // The test triggers nothing by schedule; the coordinators still run (clone slots, IP pool).
    SYNC_INTERVAL_S: '3600',
    // One clone at a time: a second build waits for a clone slot while the first is held mid-clone.
    PVE_CLONE_LIMIT_PER_NODE: '1',
    PVE_CLONE_LIMIT_PER_STORAGE: '1',
    API_KEYS: JSON.stringify({ keys: Object.values(keys) }),
    ...(process.env.PVEFLOW_REFERENCE_DIR ? { PVEFLOW_REFERENCE_DIR: process.env.PVEFLOW_REFERENCE_DIR } : {}),
  };
  apiUrl = `http://127.0.0.1:${ports.API_PORT}`;
  const previousLog = join(dataDir, 'previous-release.log');

  // What the previous release leaves behind (serials, and the class's id), by the state it is left in.
  const left: Record<string, string> = {};
  await step(`start the previous release ${release.version} (${release.commit.slice(0, 12)}) on ${dataDir}`, async () => {
    // Its API gives up on a held day-2 operation after 5 s (the operation runs on): the stop need not wait for it.
    previous = await startPreviousRelease(release, { ...settings, API_TEMPORAL_TIMEOUT_MS: '5000' }, previousLog);
    say(`previous release ${release.version} serves ${previous.apiUrl} (pid ${previous.pid})`);
  });

  await step('previous release: three requests built to Fulfilled (one to extend and operate, one mid-operation, one completing)', async () => {
    for (const role of ['fulfilled', 'operating', 'completing']) {
      left[role] = await submit(validRequestBody({ name: role.slice(0, 10) }));
      await approve(left[role]!);
    }
    for (const role of ['fulfilled', 'operating', 'completing']) await statusOf(left[role]!, ['Fulfilled']);
  });

  await step('previous release: a pending request, one approved for tomorrow, a class of two pending', async () => {
    left.pending = await submit(validRequestBody({ name: 'pending' }));
    const tomorrow = Date.now() + 24 * HOUR;
    left.tomorrow = await submit(validRequestBody({ name: 'tomorrow', period: { start: new Date(tomorrow).toISOString(), end: new Date(tomorrow + 7 * 24 * HOUR).toISOString() } }));
    await approve(left.tomorrow);
    const klass = await api('POST', '/api/classes', 'requester', { ...validRequestBody({ name: 'lab' }), count: 2 });
    assert.equal(klass.status, 201, JSON.stringify(klass.body));
    left.class = String(klass.body.class);
    left.classMember1 = String(klass.body.requests[0].serial);
    left.classMember2 = String(klass.body.requests[1].serial);
    await statusOf(left.pending, ['Pending']);
    await statusOf(left.tomorrow, ['Approved']);
  });

  await step('previous release: one build held mid-boot (its guest agent does not answer yet)', async () => {
    await previous!.setPveFaults({ latency: { ms: HOLD_MS, route: GUEST_IP_ROUTE } });
    left.booting = await submit(validRequestBody({ name: 'booting' }));
    await approve(left.booting);
    await waitFor('the build waiting for its guest', async () => ((await record(left.booting!)).build?.stage === 'waiting-for-ip' ? true : undefined));
  });

  await step('previous release: one build held mid-clone, one waiting for the clone slot it holds', async () => {
    await previous!.setPveFaults({ latency: { ms: HOLD_MS, route: CLONE_ROUTE } });
    left.cloning = await submit(validRequestBody({ name: 'cloning' }));
    await approve(left.cloning);
    await waitFor('the first build mid-clone', async () => ((await record(left.cloning!)).build?.stage === 'cloning' ? true : undefined));
    left.waitingForSlot = await submit(validRequestBody({ name: 'waiting' }));
    await approve(left.waitingForSlot);
    await waitFor('the second build waiting for a clone slot', async () => ((await record(left.waitingForSlot!)).build?.stage === 'waiting-for-clone-slot' ? true : undefined));
  });

  await step('previous release: a snapshot held mid-task on one Fulfilled request, another one completing held at its shutdown', async () => {
    await previous!.setPveFaults({ latency: { ms: HOLD_MS, route: SNAPSHOT_ROUTE } });
    await previous!.setPveFaults({ latency: { ms: HOLD_MS, route: SHUTDOWN_ROUTE } });
    // The operation's answer waits for its end; the previous API gives up after its deadline, the operation runs on.
    const snapshotAnswer = api('POST', `/api/device_requests/${left.operating}/snapshots`, 'operator', { name: 'before-upgrade' }, 60_000);
    await waitFor('the snapshot running', async () => ((await record(left.operating!)).operations?.at(-1)?.state === 'running' ? true : undefined));
    const completing = await api('POST', `/api/device_requests/${left.completing}/complete`, 'requester', {});
    assert.equal(completing.status, 200, JSON.stringify(completing.body));
    await statusOf(left.completing!, ['Completing']);
    say(`the previous API answered the held snapshot with ${(await snapshotAnswer).status}`);
  });

  const before = await step('previous release: every record as it reads before the upgrade', async () => {
    const records: Record<string, { status: string; build?: { stage: string }; operations?: Array<{ state: string }> }> = {};
    for (const [role, serial] of Object.entries(left)) if (role !== 'class') records[role] = await record(serial);
    // Each one is where the test put it at the moment of the stop: what is held is still held.
    const where = (role: string) => {
      const r = records[role]!;
      return { status: r.status, stage: r.build?.stage, operation: r.operations?.at(-1)?.state };
    };
    const expected: Record<string, Partial<ReturnType<typeof where>>> = {
      pending: { status: 'Pending' },
      tomorrow: { status: 'Approved' },
      classMember1: { status: 'Pending' },
      classMember2: { status: 'Pending' },
      fulfilled: { status: 'Fulfilled' },
      operating: { status: 'Fulfilled', operation: 'running' },
      completing: { status: 'Completing' },
      booting: { stage: 'waiting-for-ip' },
      cloning: { stage: 'cloning' },
      waitingForSlot: { stage: 'waiting-for-clone-slot' },
    };
    for (const [role, want] of Object.entries(expected)) {
      const got = where(role);
      assert.deepEqual(Object.fromEntries(Object.keys(want).map((k) => [k, got[k as keyof typeof got]])), want, `${role} ${left[role]} before the stop`);
    }
    say(
      Object.entries(records)
        .map(([role, r]) => `${role} ${left[role]} ${r.status}`)
        .join(', '),
    );
    return records;
  });

  await step(`stop the previous release ${release.version} (SIGTERM) with all of that in flight`, async () => {
    const exit = await previous!.stop();
    previous = undefined;
    stoppedAt = new Date();
    assert.deepEqual(exit, { code: 0, signal: null }, `the previous release stops cleanly on SIGTERM; see ${previousLog}`);
  });

  await step('start this release on the same DATA_DIR (Temporal SQLite file, simulated world, codec key, task queue)', async () => {
    current = await startEmbeddedStack({ env: { PATH: process.env.PATH, ...settings } });
    assert.equal(current.world?.origin.kind, 'restored', 'the simulated world of the previous release is what this one starts from');
    assert.equal(current.apiUrl, apiUrl);
  });

  const serials = Object.entries(left).filter(([role]) => role !== 'class');
  await step('this release reads every record the previous one wrote (API and CLI); none is lost', () =>
    judged('reading the old records', async () => {
      for (const [role, serial] of serials) {
        const r = await record(serial);
        assert.equal(r.serial, serial);
        // A held step may have moved on between the last read and the stop; it must not have moved back.
        if (['pending', 'tomorrow', 'fulfilled', 'classMember1', 'classMember2'].includes(role)) assert.equal(r.status, before[role]!.status, `${role} ${serial}`);
        const shown = await cli('requests', 'show', serial);
        assert.equal(shown.serial, serial);
      }
      // The list is Temporal's visibility, which the restarted dev server serves from the same file.
      await waitFor('every request the previous release started in the list', async () => {
        const listed = new Set<string>();
        for (let page = await cli('requests', 'list', '--page-size', '100'); ;) {
          for (const r of page.items) listed.add(r.serial);
          if (!page.next_page_token) break;
          page = await cli('requests', 'list', '--page-size', '100', '--page-token', page.next_page_token);
        }
        const missing = serials.map(([, s]) => s).filter((s) => !listed.has(s));
        if (missing.length) throw new Error(`not listed: ${missing.join(', ')}`);
        return true;
      });
      const klass = await cli('classes', 'show', left.class!);
      assert.deepEqual(klass.requests.map((r: { serial: string }) => r.serial).sort(), [left.classMember1, left.classMember2].sort());
    }),
  );

  await step('the held builds (mid-boot, mid-clone, waiting for a slot) finish on this release; the held snapshot ends; the completing one completes', () =>
    judged('the builds, the operation and the completion in flight', async () => {
      for (const role of ['booting', 'cloning', 'waitingForSlot']) await statusOf(left[role]!, ['Fulfilled']);
      const op = await waitFor('the snapshot started before the upgrade to end', async () => {
        const last = (await record(left.operating!)).operations?.at(-1);
        return last && last.state !== 'running' ? last : undefined;
      });
      assert.equal(op.state, 'succeeded', JSON.stringify(op));
      await statusOf(left.completing!, ['Completed']);
    }),
  );

  await step('this release: extend one, a day-2 operation on it, approve the pending one and the class (CLI)', () =>
    judged('extend, operate, approve', async () => {
      const newEnd = new Date(Date.now() + 30 * 24 * HOUR).toISOString();
      await cli('requests', 'extend', left.fulfilled!, '--new-end', newEnd);
      assert.equal(Date.parse((await record(left.fulfilled!)).request.period.end), Date.parse(newEnd), 'the lease ends when it was moved to');
      const snap = await cli('vm', 'snapshot', left.fulfilled!, 'create', 'after-upgrade');
      assert.equal(snap.operation?.state ?? 'succeeded', 'succeeded', JSON.stringify(snap));
      await cli('requests', 'approve', left.pending!);
      await cli('classes', 'approve', left.class!);
      for (const role of ['pending', 'classMember1', 'classMember2']) await statusOf(left[role]!, ['Fulfilled']);
    }),
  );

  const fulfilled = ['fulfilled', 'operating', 'booting', 'cloning', 'waitingForSlot', 'pending', 'classMember1', 'classMember2'];
  await step('exactly one VM per fulfilled request, and no other', async () => {
    const vmids = await Promise.all(fulfilled.map(async (role) => (await record(left[role]!)).device.vmid as number));
    assert.equal(new Set(vmids).size, vmids.length, `one VM each: ${vmids.join(', ')}`);
    const made = current!.world!.pve.dump().vms.filter((v) => !v.template);
    assert.deepEqual(made.map((v) => v.vmid).sort(), [...vmids].sort(), 'the cluster holds the fulfilled requests’ VMs and nothing else');
  });

  await step('the coordinators and the sync schedule the previous release started run on under this release', () =>
    judged('coordinators and cluster sync', async () => {
      const client = current!.client;
      const taskQueue = settings.TEMPORAL_TASK_QUEUE!;
      for (const id of [cloneSlotsWorkflowId(taskQueue), ipPoolWorkflowId(taskQueue)]) {
        const runs = [];
        for await (const run of client.workflow.list({ query: `WorkflowId = "${id}"` })) runs.push(run);
        assert.ok(
          runs.some((r) => r.startTime < stoppedAt),
          `${id} was started by the previous release`,
        );
        assert.equal(runs.filter((r) => r.status.name === 'RUNNING').length, 1, `${id}: one run goes on, not a second coordinator`);
      }
      const schedule = client.schedule.getHandle(syncScheduleId(taskQueue));
      const described = await schedule.describe();
      assert.ok(described.info.createdAt < stoppedAt, 'the sync schedule is the one the previous release created');
      const seen = new Set(described.info.recentActions.map((a) => a.action.workflow.workflowId));
      await schedule.trigger();
      const run = await waitFor('the triggered cluster sync', async () => (await schedule.describe()).info.recentActions.find((a) => !seen.has(a.action.workflow.workflowId)));
      await client.workflow.getHandle(run.action.workflow.workflowId).result();
      // The sync tells each request what changed: nothing did, across the upgrade.
      for (const role of fulfilled) {
        const r = await record(left[role]!);
        assert.equal(r.status, 'Fulfilled', `${role} ${left[role]} after the sync: ${JSON.stringify(r.drift)}`);
        assert.equal(r.drift, undefined, `${role} ${left[role]}: the sync saw a drift`);
      }
    }),
  );

  await step('complete every request through this release (CLI); the one for tomorrow too', () =>
    judged('completing everything', async () => {
      for (const role of [...fulfilled, 'tomorrow']) await cli('requests', 'complete', left[role]!);
      for (const role of [...fulfilled, 'tomorrow']) {
        const done = await statusOf(left[role]!, ['Completed']);
        assert.deepEqual(done.leftovers ?? [], [], `${role} ${left[role]} left something behind`);
      }
    }),
  );

  await step('nothing left in the simulated Proxmox and NetBird; no workflow task failed in any history', async () => {
    const pve = current!.world!.pve.dump();
    assert.deepEqual(
      pve.vms.filter((v) => !v.template).map((v) => `${v.vmid} on ${v.node}`),
      [],
    );
    const nb = current!.world!.netbird.dump();
    const ours = (name: string) => serials.some(([, s]) => name.includes(s) || name.includes(s.toLowerCase()));
    assert.deepEqual(
      nb.peers.map((p) => p.name),
      [],
    );
    assert.deepEqual(
      nb.groups.filter((g) => ours(g.name)).map((g) => g.name),
      [],
    );
    assert.deepEqual(
      nb.policies.map((p) => p.name),
      [],
    );
    assert.deepEqual(
      nb.setupKeys.filter((k) => !k.revoked || ours(k.name)).map((k) => k.name),
      [],
    );
    const failures = await workflowTaskFailures(current!.client);
    assert.equal(failures.length, 0, failureReport(failures));
    say(`${serials.length} requests carried across the upgrade; previous release log: ${readFileSync(previousLog, 'utf8').split('\n').length} lines`);
  });
});
