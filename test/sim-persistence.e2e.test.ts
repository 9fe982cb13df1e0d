import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Agent, fetch as undiciFetch } from 'undici';
import { generateApiKey } from '../src/api/auth/apiKeys';
import { startEmbeddedStack, type EmbeddedStack } from '../src/embedded/stack';
import { readWorldAccessFile } from '../src/simulators/inspection';
import { WORLD_STATE_FILE } from '../src/simulators/persistence';
import { requireTemporalBinary } from '../src/temporal/binaries';
import { freePort } from './support/ports';
import { validRequestBody } from './support/requests';
import { apiRequestDriver } from './support/apiRequestDriver';
import { waitFor } from './support/waitFor';
import { syncScheduleId } from '../src/contracts/workflowIds';

/**
 * The embedded default restarted on the same DATA_DIR: the simulated world (VMs, their leases, NetBird peers,
 * snippets, tokens) is what it was, so a cluster sync after the restart finds every Fulfilled request's VM where
 * it was; `--reset-sim` starts an empty world instead.
 */

const dataDir = mkdtempSync(join(tmpdir(), 'pveflow-restart-'));
const operator = { id: 'ops', role: 'operator', key: generateApiKey() };
let stack: EmbeddedStack | undefined;
/** The latest start, under way or done: a test ended mid-start (its timeout) must not leave that stack running. */
let starting: Promise<EmbeddedStack> | undefined;

after(async () => {
  // The latest stack, even one still starting when the test ended; one the test stopped already stops for nothing.
  await starting?.then(
    (started) => started.stop(),
    () => undefined, // a start that failed stopped what it had started
  );
  rmSync(dataDir, { recursive: true, force: true });
});

async function start(resetSim = false): Promise<EmbeddedStack> {
  requireTemporalBinary('temporal');
  starting = startEmbeddedStack({
    resetSim,
    env: {
      PATH: process.env.PATH,
      DATA_DIR: dataDir,
      TEMPORAL_PORT: String(await freePort()),
      // The gateway binds a port of the system's choosing: one picked free here could be taken before it binds.
      TEMPORAL_UI_PORT: '0',
      TEMPORAL_TASK_QUEUE: `restart-${process.pid}`,
      API_PORT: '0',
      SIM_PVE_PORT: '0',
      SIM_NETBIRD_PORT: '0',
      SIM_TIMING: 'fast',
      // The test runs the sync itself, once, after each restart.
      SYNC_INTERVAL_S: '3600',
      API_KEYS: JSON.stringify({ keys: [operator] }),
    },
  });
  return starting;
}

async function api(method: string, path: string, body?: unknown) {
  const res = await fetch(`${stack!.apiUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${operator.key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** Triggers the cluster sync and waits for that run to finish. */
async function syncOnce(): Promise<void> {
  const schedule = stack!.client.schedule.getHandle(syncScheduleId(stack!.temporal.taskQueue));
  const before = new Set((await schedule.describe()).info.recentActions.map((a) => a.action.workflow.workflowId));
  await schedule.trigger();
  const run = await waitFor('the triggered cluster sync', async () => (await schedule.describe()).info.recentActions.find((a) => !before.has(a.action.workflow.workflowId)));
  await stack!.client.workflow.getHandle(run.action.workflow.workflowId).result();
}

/** The guest's IPv4 as its QEMU guest agent reports it, asked with the root token from the world's access file. */
async function guestIpv4(node: string, vmid: number): Promise<string | undefined> {
  const access = readWorldAccessFile(stack!.world!.accessFile)!;
  const dispatcher = new Agent({ connect: { ca: readFileSync(access.PVE_CA_FILE!) } });
  try {
    const res = await undiciFetch(`${access.PVE_ENDPOINT}/api2/json/nodes/${node}/qemu/${vmid}/agent/network-get-interfaces`, {
      headers: { authorization: `PVEAPIToken=${access.PVE_ROOT_TOKEN_ID}=${access.PVE_ROOT_TOKEN_SECRET}` },
      dispatcher,
    });
    assert.equal(res.status, 200, `the root token from ${stack!.world!.accessFile} is accepted`);
    const body = (await res.json()) as { data: { result: Array<{ name: string; 'ip-addresses': Array<{ 'ip-address': string; 'ip-address-type': string }> }> } };
    return body.data.result.find((i) => i.name === 'eth0')?.['ip-addresses'].find((a) => a['ip-address-type'] === 'ipv4')?.['ip-address'];
  } finally {
    await dispatcher.close();
  }
}

test("a restart keeps the simulated world: the sync finds the Fulfilled request's VM, lease and VPN peer; --reset-sim empties it", async () => {
  // First start: a new world; one request built to the end.
  stack = await start();
  assert.equal(stack.world!.origin.kind, 'new');
  // The operator key submits, approves and reads.
  const request = await apiRequestDriver((method, path, _as, body) => api(method, path, body)).startApproved(validRequestBody());
  const { serial } = request;
  const fulfilled = await request.waitForStatus('Fulfilled');
  const { vmid, node, ip, vpnHostname } = fulfilled.device;
  const firstAccess = readWorldAccessFile(stack.world!.accessFile)!;
  const snippetsDir = stack.world!.snippetsDirOf(node);
  const snippets = readdirSync(snippetsDir);
  assert.ok(
    snippets.some((f) => f.includes(serial.toLowerCase())),
    'the snippet is on the node',
  );
  const peerOf = (s: EmbeddedStack) => s.world!.netbird.dump().peers.find((p) => [p.name, p.hostname, p.dns_label].includes(vpnHostname));
  const peer = peerOf(stack);
  assert.ok(peer, `the VPN peer ${vpnHostname} is in NetBird`);
  await stack.stop();
  stack = undefined;

  const stateFile = join(dataDir, 'sim', WORLD_STATE_FILE);
  assert.equal(statSync(stateFile).mode & 0o777, 0o600, 'the state file holds secrets: only its owner reads it');
  assert.ok(!readdirSync(join(dataDir, 'sim')).some((f) => f.endsWith('.tmp')), 'no temporary file is left behind');
  const saved = JSON.parse(readFileSync(stateFile, 'utf8'));
  assert.ok(
    saved.pve.vms.some((v: { vmid: number }) => v.vmid === vmid),
    'the stop wrote the VM into the state file',
  );

  // Second start on the same DATA_DIR: the same world, the same tokens; a sync changes nothing.
  stack = await start();
  assert.equal(stack.world!.origin.kind, 'restored');
  const access = readWorldAccessFile(stack.world!.accessFile)!;
  for (const key of ['PVE_TOKEN_SECRET', 'PVE_ROOT_TOKEN_SECRET', 'NETBIRD_TOKEN', 'SSH_HOST_FINGERPRINTS'] as const) {
    assert.equal(access[key], firstAccess[key], `${key} is what it was before the restart`);
  }
  const vm = stack.world!.pve.dump().vms.find((v) => v.vmid === vmid);
  assert.ok(vm, `VM ${vmid} is still in the cluster`);
  assert.equal(vm.node, node);
  assert.equal(vm.status, 'running');
  assert.equal(await guestIpv4(node, vmid), ip, 'the guest kept its lease');
  assert.deepEqual(peerOf(stack), { ...peer, connected: peerOf(stack)!.connected }, 'the VPN peer is the same one');
  assert.deepEqual(readdirSync(snippetsDir), snippets, 'the snippets are still on the node');

  await syncOnce();
  const after = await api('GET', `/api/device_requests/${serial}`);
  assert.equal(after.body.status, 'Fulfilled', JSON.stringify(after.body.timeline));
  assert.deepEqual({ vmid: after.body.device.vmid, node: after.body.device.node, ip: after.body.device.ip, vpnHostname: after.body.device.vpnHostname }, { vmid, node, ip, vpnHostname });
  await stack.stop();
  stack = undefined;

  // --reset-sim: an empty world (the template only), no peers, no snippets; new tokens.
  stack = await start(true);
  assert.deepEqual(stack.world!.origin, { kind: 'reset', file: stateFile, hadState: true });
  assert.deepEqual(
    stack.world!.pve.dump().vms.map((v) => v.vmid),
    [9000],
  );
  assert.deepEqual(stack.world!.netbird.dump().peers, []);
  assert.ok(!existsSync(snippetsDir) || readdirSync(snippetsDir).length === 0, 'no snippet is left');
  assert.notEqual(readWorldAccessFile(stack.world!.accessFile)!.PVE_TOKEN_SECRET, firstAccess.PVE_TOKEN_SECRET);
  // The contrast that makes the second start's sync mean something: here the VM is gone, and the sync says so.
  await syncOnce();
  // The sync tells the request by signal; the request takes it in its own next step.
  const vanished = await waitFor('the request to learn its VM vanished', async () => {
    const r = await api('GET', `/api/device_requests/${serial}`);
    return r.body.status !== 'Fulfilled' ? r : undefined;
  });
  assert.equal(vanished.body.status, 'Failed', JSON.stringify(vanished.body));
});
