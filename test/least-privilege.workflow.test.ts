import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { loadConfig } from '../src/config';
import { checkPve, type Finding } from '../src/doctor';
import { deviceNames } from '../src/domain/deviceNames';
import { firstStageNeeding, pveflowRole } from '../src/domain/pveflowPrivileges';
import { simulatorTimings } from '../src/embedded/simulatorTimings';
import { startSimulatedWorld, type SimulatedWorld } from '../src/simulators/world';
import { closeActivityDeps, createActivityDeps, createWorker } from '../src/worker';
import { vmBuild } from '../src/workflows';
import { completeUpdate } from '../src/contracts/messages';
import { requestDriver } from './support/requestDriver';
import { useWorkflowHarness, type WorkflowHarness } from './support/workflowHarness';

/**
 * The role docs/operations.md tells operators to create, granted where it says, is exactly enough: a token holding
 * it builds and completes a VM; a token lacking any one of its privileges is caught by the doctor, naming it, and its
 * build fails at the stage that needs it, naming it and what to grant. The role and the paths are read from the
 * document itself, so the test follows what an operator would type.
 */

const doc = readFileSync(join(__dirname, '..', 'docs', 'operations.md'), 'utf8');
const ROLE = /pveum role add PVEflow --privs "([^"]+)"/.exec(doc)?.[1]?.split(' ') ?? [];
const GRANT_PATHS = /for path in ([^;]+); do\n\s+pveum acl modify "\$path" --roles PVEflow --users/.exec(doc)?.[1]?.trim().split(/\s+/) ?? [];

interface Token {
  id: string;
  secret: string;
}
const DOCUMENTED: Token = { id: 'least@pve!automation', secret: '4f1d2c3b-0000-4000-8000-000000000001' };
const lacking = (i: number): Token => ({ id: `lacks${i}@pve!automation`, secret: `4f1d2c3b-0000-4000-8000-${String(100 + i).padStart(12, '0')}` });

/** Grants a role exactly as the document's loop does: on each path, to the user and to its token, without propagation. */
function grant(seed: Parameters<NonNullable<Parameters<typeof startSimulatedWorld>[0]['adjustSeed']>>[0], token: Token, role: string, privileges: string[]): void {
  const user = token.id.split('!')[0]!;
  seed.users.push({ userid: user });
  seed.tokens.push({ tokenid: token.id, secret: token.secret, privsep: true });
  seed.roles = { ...seed.roles, [role]: privileges };
  for (const path of GRANT_PATHS) {
    seed.acls.push({ path, subject: user, role, propagate: false }, { path, subject: token.id, role, propagate: false });
  }
}

describe('least privilege: the documented role, and each of its privileges taken away', () => {
  const harness = useWorkflowHarness();
  const dir = mkdtempSync(join(tmpdir(), 'pveflow-least-'));
  let world: SimulatedWorld | undefined;
  after(async () => {
    await world?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function theWorld(h: WorkflowHarness): Promise<SimulatedWorld> {
    world ??= await startSimulatedWorld({
      dir: join(dir, 'world'),
      timing: simulatorTimings.fast,
      externalSsh: { host: h.sshd.host, port: h.sshd.port, username: h.sshd.username, privateKey: h.sshd.privateKey, hostKeyFingerprint: h.sshd.hostKeyFingerprint, dir: h.sshd.dir },
      adjustSeed: (seed) => {
        grant(seed, DOCUMENTED, 'PVEflow', ROLE);
        ROLE.forEach((p, i) =>
          grant(
            seed,
            lacking(i),
            `PVEflowWithout${i}`,
            ROLE.filter((q) => q !== p),
          ),
        );
      },
    });
    return world;
  }

  /** A worker whose activities use `token` instead of the world's default one. */
  async function withToken<T>(h: WorkflowHarness, w: SimulatedWorld, token: Token, taskQueue: string, fn: () => Promise<T>, env: TestWorkflowEnvironment = h.env): Promise<T> {
    const deps = createActivityDeps(loadConfig({ ...w.env, PVE_TOKEN_ID: token.id, PVE_TOKEN_SECRET: token.secret }));
    const own = deps.temporal.client;
    deps.temporal.client = env.client;
    deps.settings.pollMinMs = 20;
    deps.settings.pollMaxMs = 200;
    try {
      const worker = await createWorker({ connection: env.nativeConnection, namespace: 'default', taskQueue, deps, workflowBundle: h.bundle });
      return await worker.runUntil(fn());
    } finally {
      deps.temporal.client = own;
      await closeActivityDeps(deps);
    }
  }

  async function doctorFindings(w: SimulatedWorld, token: Token): Promise<Finding[]> {
    const deps = createActivityDeps(loadConfig({ ...w.env, PVE_TOKEN_ID: token.id, PVE_TOKEN_SECRET: token.secret }));
    try {
      return (await checkPve({ pve: deps.pve, token, settings: deps.settings })).findings;
    } finally {
      await closeActivityDeps(deps);
    }
  }

  test('the document’s role is the list pveflow derives from what it sends, granted on the paths a build uses', () => {
    assert.deepEqual(ROLE, pveflowRole(9));
    assert.deepEqual(GRANT_PATHS, ['/pool/pveflow', '/storage/local', '/storage/ceph', '/sdn/zones/localnetwork/vmbr0', '/sdn/zones/localnetwork', '/nodes/pve1', '/nodes/pve2', '/nodes/pve3']);
  });

  test('a token holding exactly the documented role passes the doctor, builds a VM and completes it', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const h = harness.h;
    const w = await theWorld(h);
    assert.deepEqual(
      (await doctorFindings(w, DOCUMENTED)).filter((f) => !f.ok),
      [],
    );

    const serial = 'VM-LP001';
    const taskQueue = `least-${serial}`;
    await withToken(h, w, DOCUMENTED, taskQueue, async () => {
      // A disk size too: a request may ask for one, and growing the disk is one more privilege.
      const request = await h.request(serial, { diskGiB: 8 });
      const { handle, waitForStatus } = await requestDriver(h.env.client, taskQueue).startApproved(request);
      const fulfilled = await waitForStatus('Fulfilled');
      const vmid = fulfilled.device.vmid!;
      const vm = w.pve.dump().vms.find((v) => v.vmid === vmid)!;
      assert.match(vm.config.smbios1 ?? '', /serial=/, 'the SMBIOS metadata was written');
      assert.match(vm.config.scsi0 ?? '', /size=8G/, 'the disk was grown');

      await handle.executeUpdate(completeUpdate, { args: [{ by: 'admin' }] });
      const record = await handle.result();
      assert.equal(record.status, 'Completed');
      assert.deepEqual(record.leftovers, []);
      assert.equal(
        w.pve.dump().vms.some((v) => v.vmid === vmid),
        false,
        'the VM is destroyed',
      );
      assert.equal(existsSync(join(w.snippetsDirOf(fulfilled.device.node!), deviceNames(serial, 'lab').snippetFile)), false, 'the snippet is removed');
    });
  });

  test('without any one privilege of the role, the doctor names it and the build fails at the stage that needs it, saying what to grant', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const h = harness.h;
    const w = await theWorld(h);
    for (const [i, privilege] of ROLE.entries()) {
      const token = lacking(i);
      const failed = (await doctorFindings(w, token)).filter((f) => !f.ok);
      assert.ok(
        failed.some((f) => f.check.startsWith('pve.privileges') && f.message.includes(privilege)),
        `doctor without ${privilege}: ${JSON.stringify(failed)}`,
      );

      const stage = firstStageNeeding(privilege, 9);
      // No build needs a day-2 operation's privilege: test/vmOperations.activities.test.ts shows the operation naming it.
      if (stage === 'day-2') continue;
      // Nor does a healthy build read its guest's log: only one that waited in vain does, and without the privilege its
      // message says the log could not be read, and why (test/guestLogs.workflow.test.ts shows such a message).
      if (stage === 'diagnosing') continue;
      // Nor an image import's (test/pve-simulator-import.test.ts shows Proxmox refusing each, naming it), nor the
      // doctor's own look at the bridges: the doctor's finding above is what names them.
      if (stage === 'importing' || stage === 'doctor') continue;
      assert.ok(stage && stage !== 'completing', `${privilege} is needed by a stage of the build`);
      const serial = `VM-LP${String(100 + i)}`;
      const taskQueue = `least-${serial}`;
      const request = await h.request(serial, { diskGiB: 8 });
      const err = await withToken(h, w, token, taskQueue, () =>
        h.env.client.workflow.execute(vmBuild, { workflowId: `vm-build-${serial}-1`, taskQueue, args: [{ request, attempt: 1 }] }).then(
          () => undefined,
          (e: unknown) => e,
        ),
      );
      assert.ok(err instanceof WorkflowFailedError, `the build without ${privilege} must fail`);
      const message = err.cause?.message ?? '';
      assert.match(message, new RegExp(`failed at stage ${stage}: `), `without ${privilege}: ${message}`);
      assert.ok(message.includes(privilege), `names ${privilege}: ${message}`);
      assert.match(message, /PVEflow role/, `says what to grant: ${message}`);
      // What the failed build made is undone: no VM of this request is left.
      assert.equal(
        w.pve.dump().vms.some((v) => v.name === deviceNames(serial, 'lab').hostname),
        false,
        `no VM left without ${privilege}`,
      );
    }
  });
});
