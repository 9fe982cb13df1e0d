import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { generateApiKey } from '../src/api/auth/apiKeys';
import { realGuestPrerequisites } from '../src/simulators/pve';
import { guestImage, runnableOrSkip } from './support/realGuest';
import { validRequestBody } from './support/requests';
import { acmeRequesterAndAdmin, requesterAndAdmin, stackApiCall, waitFulfilledQuotingGuest, worldPveClient } from './support/stackRequests';
import { startTestStack, type TestStack } from './support/testStack';
import { waitFor } from './support/waitFor';

/**
 * Issue 31 §5, bring-your-own-image end to end: the project's Debian guest image, served over HTTP on loopback, is
 * imported through pveflow's API into the simulated cluster (download-url, import-from, template, catalogue), and a
 * request for that image, once approved, boots it under the simulator's real-guest mode and is Fulfilled with the
 * address the guest's own agent reports. One guest boot; NetBird is the simulated one (the guest's enrolment is not
 * what this test is about: test/e2e-consultant.e2e.test.ts holds that).
 */
const IMAGE = 'debian-guest';
const IMPORT_WAIT_MS = 10 * 60_000;
/** A boot under software emulation on a loaded box: minutes; bounded generously. */
const BUILD_WAIT_MS = 20 * 60_000;

const keys = {
  ...acmeRequesterAndAdmin(),
  operator: { id: 'ops', role: 'operator', key: generateApiKey() },
};

const reasonNotRunnable = realGuestPrerequisites();
let running: TestStack | undefined;
let server: Server | undefined;
let imageUrl = '';
let imageSha256 = '';
let imageBytes = 0;

before(
  async () => {
    if (reasonNotRunnable) return;
    const image = guestImage();
    const disk = join(image, 'disk.qcow2');
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(disk)) hash.update(chunk as Buffer);
    imageSha256 = hash.digest('hex');
    imageBytes = statSync(disk).size;
    server = createServer((req, res) => {
      if (req.url !== `/${IMAGE}.qcow2`) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': imageBytes });
      createReadStream(disk).pipe(res);
    });
    await new Promise<void>((done) => server!.listen(0, '127.0.0.1', done));
    imageUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/${IMAGE}.qcow2`;
    // The stack's own default image is the same one: what proves the import is the clone's backing file below.
    running = await startTestStack('image-import-e2e', Object.values(keys), { GUEST_IP_WAIT_S: '1200', SYNC_INTERVAL_S: '5', PVEFLOW_IMAGE_URLS_ALLOW_LOCAL: 'true' }, { realGuests: { image } });
  },
  { timeout: 30 * 60_000 },
);

after(async () => {
  await running?.stop();
  await new Promise<void>((done) => (server ? server.close(() => done()) : done()));
});

const api = stackApiCall(() => running!.stack.apiUrl, keys);

test('an image imported from a URL through the API becomes a template, and a request for it boots it and reports its address', { timeout: IMPORT_WAIT_MS + BUILD_WAIT_MS + 5 * 60_000 }, async (t) => {
  if (!runnableOrSkip(t, reasonNotRunnable, 'real guests cannot run on this machine')) return;
  const world = running!.stack.world!;

  const started = await api('POST', '/api/images', 'operator', { name: IMAGE, os: 'Debian 12', url: imageUrl, checksum: imageSha256, checksum_algorithm: 'sha256', min_memory_mib: 512 });
  assert.equal(started.status, 202, JSON.stringify(started.body));

  // The operator's view while it runs: the stages it went through, and the bytes the download reported.
  const stages = new Set<string>();
  let bytesSeen = 0;
  const done = await waitFor(
    `the import of ${IMAGE}`,
    async () => {
      const r = await api('GET', `/api/image-imports/${IMAGE}`, 'operator');
      assert.equal(r.status, 200, JSON.stringify(r.body));
      stages.add(r.body.stage);
      bytesSeen = Math.max(bytesSeen, r.body.bytes ?? 0);
      return r.body.state === 'running' ? undefined : r.body;
    },
    IMPORT_WAIT_MS,
    500,
  );
  assert.equal(done.state, 'completed', `the import failed: ${done.error}\n${JSON.stringify(done.log, null, 1)}`);
  assert.equal(done.stage, 'done');
  assert.deepEqual(done.leftovers, []);
  assert.equal(done.total_bytes, imageBytes, 'the download reported the whole file');
  assert.ok(
    done.log.some((l: { stage: string }) => l.stage === 'downloading'),
    JSON.stringify(done.log),
  );
  t.diagnostic(`import stages polled: ${[...stages].join(', ')}; template ${done.template_vmid} on ${done.node}`);

  // A request may name the image once a cluster sync has seen its template in the pool (SYNC_INTERVAL_S, 5 s here).
  const entry = await waitFor(
    `the cluster sync to see ${IMAGE}'s template`,
    async () => {
      const r = await api('GET', `/api/images/${IMAGE}`, 'requester');
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return r.body.template_vmid === undefined ? undefined : r.body;
    },
    2 * 60_000,
    1000,
  );
  assert.equal(entry.origin, 'import');
  assert.deepEqual([entry.template, entry.template_vmid, entry.node], [done.template_vmid, done.template_vmid, done.node]);

  const requests = requesterAndAdmin(api);
  const request = await requests.startPending(validRequestBody({ image: IMAGE, cores: 1, memory_mib: 1024 }));
  const approved = await request.approve();
  assert.equal(approved.status, 200, JSON.stringify(approved.body));

  const fulfilled = await waitFulfilledQuotingGuest(request, world, { timeoutMs: BUILD_WAIT_MS, everyMs: 2000 });
  const device = fulfilled.device as { vmid: number; node: string; ip: string };
  const guest = world.pve.realGuest(device.vmid);
  assert.ok(guest, `VM ${device.vmid} runs a real guest`);
  // The clone stands on the imported template's disk, not on the image real-guest mode boots by default.
  const backing = (JSON.parse(execFileSync('qemu-img', ['info', '--output=json', '-U', guest.disk]).toString()) as { 'backing-filename'?: string })['backing-filename'];
  assert.equal(backing, join(world.realGuestsDir!, `vm-${done.template_vmid}`, 'disk.qcow2'), 'the request’s VM boots the imported image');

  // The address on the request is the one the guest's own agent reports.
  const pve = worldPveClient(world);
  try {
    const { result } = await pve.guestNetworkInterfaces(device.node, device.vmid);
    const agentAddresses = result.flatMap((i) => (i['ip-addresses'] ?? []).filter((a) => a['ip-address-type'] === 'ipv4').map((a) => a['ip-address']));
    assert.ok(agentAddresses.includes(device.ip), `the request reports ${device.ip}; the guest agent reports ${agentAddresses.join(', ')}`);
    assert.notEqual(device.ip, '127.0.0.1');
  } finally {
    await pve.close();
  }

  // While the request holds its VM, the image (and so its template, the VM's backing disk) cannot be deleted.
  const inUse = await api('DELETE', `/api/images/${IMAGE}`, 'operator');
  assert.equal(inUse.status, 409, JSON.stringify(inUse.body));
  assert.match(inUse.body.detail, new RegExp(request.serial));
  assert.ok(
    world.pve.dump().vms.some((v) => v.vmid === done.template_vmid && v.template),
    'the template stays',
  );
});
