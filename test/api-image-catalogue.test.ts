import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { WorkflowNotFoundError } from '@temporalio/client';
import { bundleWorkflowCode } from '@temporalio/worker';
import { defaultRequestChoiceSettings, type RequestChoiceSettings } from '../src/requestChoices';
import { addImageUpdate, catalogueQuery, seedImagesUpdate } from '../src/contracts/imageCatalogueMessages';
import type { ClusterSyncResult } from '../src/contracts/types';
import { imageCatalogueWorkflowId, imageImportWorkflowId, imageTemplateRemovalWorkflowId } from '../src/contracts/workflowIds';
import { startApiOnDevServer, twoOrgsAndOperator, type ApiOnDevServer } from './support/apiOnDevServer';
import { quietLogger } from './support/quietLogger';
import { validRequestBody } from './support/requests';
import { waitFor } from './support/waitFor';
import { pveflow } from './support/cliRunner';

/**
 * The image catalogue through the API, on a real Temporal dev server with the real catalogue workflow: seeded by
 * PVEFLOW_IMAGES, each org sees its images only, operators import, update, retire and delete; a name that exists, a
 * running import of it, or a request using the image is a 409; bad import input is a 400 naming the field and starts
 * nothing. Every answer is checked against the OpenAPI document.
 */
const run = process.pid.toString(36);
const keys = twoOrgsAndOperator();
type KeyName = keyof typeof keys;

const seed = [
  { name: 'debian-12', template: 9000, os: 'Debian 12' },
  { name: 'ubuntu', template: 9001, os: 'Ubuntu 24.04', min_cores: 2, orgs: ['Acme Corp'] },
  { name: 'scratch', template: 9002 },
];
const choices: RequestChoiceSettings = { ...defaultRequestChoiceSettings, images: seed, imageImports: { refuseLocalUrls: true, diskStorage: 'local-lvm' } };
const syncResult = (at: string): ClusterSyncResult => ({
  at,
  vmsSeen: 3,
  requestsChecked: 0,
  drifts: [],
  orphans: [],
  orphanCount: 0,
  templates: [
    { vmid: 9000, name: 'debian-12-cloudinit', node: 'pve1', diskGiB: 4 },
    { vmid: 9001, name: 'ubuntu-24.04-cloudinit', node: 'pve2', diskGiB: 8 },
    { vmid: 9002, name: 'scratch', node: 'pve1', diskGiB: 2 },
  ],
});
const sha256 = 'a'.repeat(64);
const importBody = (overrides: Record<string, unknown> = {}) => ({
  name: 'alma-9',
  os: 'AlmaLinux 9',
  url: 'https://images.example/alma-9.qcow2',
  checksum: sha256,
  checksum_algorithm: 'sha256',
  ...overrides,
});

describe('the image catalogue through the API', () => {
  let api: ApiOnDevServer<KeyName>;
  const taskQueue = `catalogue-${run}`;
  const call = (who: KeyName, method: string, path: string, body?: unknown) => api.call(who, method, path, body);

  before(async () => {
    const workflowBundle = await bundleWorkflowCode({ workflowsPath: require.resolve('./support/pendingRequestWorkflow'), logger: quietLogger });
    api = await startApiOnDevServer({ taskQueue, keys, choices, workflowBundle });
    await api.env.client.workflow.execute('clusterSync', { taskQueue, workflowId: `sync-${run}`, args: [syncResult(new Date().toISOString())] });
  });

  after(async () => {
    await api?.stop();
  });

  const fieldsOf = (answer: { body: { issues?: Array<{ field: string }> } }) => (answer.body.issues ?? []).map((i) => i.field).sort();

  test('PVEFLOW_IMAGES seeds the catalogue; an org sees only its images, and only an operator sees whom they are reserved to', async () => {
    await waitFor('the sync to be visible', async () => ((await call('operator', 'GET', '/api/images')).status === 200 ? true : undefined));
    const forGlobex = await call('globex', 'GET', '/api/images');
    assert.deepEqual(forGlobex.body.images.map((i: { name: string }) => i.name).sort(), ['debian-12', 'scratch']);
    assert.equal((await call('globex', 'GET', '/api/images/ubuntu')).status, 404, "another org's image does not exist for Globex");
    const forAcme = await call('acme', 'GET', '/api/images/ubuntu');
    assert.equal(forAcme.status, 200);
    assert.equal(forAcme.body.orgs, undefined);
    assert.equal(forAcme.body.template_vmid, 9001);
    const forOps = await call('operator', 'GET', '/api/images/ubuntu');
    assert.deepEqual(forOps.body.orgs, ['Acme Corp']);
    assert.equal(forOps.body.origin, 'seed');
  });

  test('requesters may not change the catalogue: import, update, retire and delete are 403', async () => {
    assert.equal((await call('acme', 'POST', '/api/images', importBody())).status, 403);
    assert.equal((await call('acme', 'PATCH', '/api/images/debian-12', { min_cores: 2 })).status, 403);
    assert.equal((await call('acme', 'POST', '/api/images/debian-12/retire')).status, 403);
    assert.equal((await call('acme', 'DELETE', '/api/images/debian-12')).status, 403);
  });

  test('bad import input is a 400 naming the field and why, and starts nothing', async () => {
    const cases: Array<[Record<string, unknown>, string[], RegExp]> = [
      [{ url: 'ftp://images.example/x.qcow2' }, ['url'], /only http and https/],
      [{ url: 'http://127.0.0.1:8080/x.qcow2' }, ['url'], /loopback or link-local address, refused in production/],
      [{ url: 'http://169.254.169.254/latest/x.qcow2' }, ['url'], /link-local/],
      [{ url: 'http://[::1]/x.qcow2' }, ['url'], /loopback/],
      [{ url: 'https://images.example/readme.html' }, ['url'], /must name a disk image file/],
      [{ url: 'https://user:pw@images.example/x.qcow2' }, ['url'], /credentials/],
      [{ checksum: 'abc' }, ['checksum'], /a sha256 checksum has 64 hex digits, not 3/],
      [{ checksum: undefined, checksum_algorithm: undefined }, ['checksum', 'checksum_algorithm'], /required with url/],
      [{ url: undefined }, ['url'], /either url .* or volume/],
      [{ checksum_algorithm: 'crc32' }, ['checksum_algorithm'], /./],
      [{ name: 'Bad Name' }, ['name'], /lower-case/],
      [{ min_memory_mib: 1 }, ['min_memory_mib'], /./],
    ];
    for (const [overrides, fields, reason] of cases) {
      const answer = await call('operator', 'POST', '/api/images', importBody(overrides));
      assert.equal(answer.status, 400, JSON.stringify(overrides));
      assert.deepEqual(fieldsOf(answer), fields, JSON.stringify(answer.body));
      assert.match(answer.body.issues[0].reason, reason);
    }
    const imports = [];
    for await (const w of api.env.client.workflow.list({ query: `WorkflowType = "imageImport"` })) imports.push(w.workflowId);
    assert.deepEqual(imports, [], 'no import was started');
  });

  test('an import of a name the catalogue holds is 409; a running import is watched, a second one of its name is 409, and it can be cancelled once', async () => {
    const taken = await call('operator', 'POST', '/api/images', importBody({ name: 'debian-12' }));
    assert.equal(taken.status, 409);
    assert.match(taken.body.detail, /an image named debian-12 exists already/);

    const started = await call('operator', 'POST', '/api/images', importBody());
    assert.equal(started.status, 202, JSON.stringify(started.body));
    assert.equal(started.body.status_url, '/api/image-imports/alma-9');
    const input = (await api.env.client.workflow.getHandle(started.body.workflow_id).describe()).raw;
    assert.ok(input, 'the workflow runs');
    const watched = await waitFor('the import to answer its status', async () => {
      const a = await call('operator', 'GET', '/api/image-imports/alma-9');
      return a.status === 200 ? a : undefined;
    });
    assert.equal(watched.body.state, 'running');
    assert.equal(watched.body.bytes, 1024);

    const again = await call('operator', 'POST', '/api/images', importBody());
    assert.equal(again.status, 409);
    assert.match(again.body.detail, /an import of image alma-9 is running already/);

    assert.equal((await call('operator', 'DELETE', '/api/image-imports/alma-9')).status, 202);
    await assert.rejects(api.env.client.workflow.getHandle(started.body.workflow_id).result(), /cancel/i);
    assert.equal((await call('operator', 'DELETE', '/api/image-imports/alma-9')).status, 409, 'an ended import has nothing to cancel');
    assert.equal((await call('operator', 'GET', '/api/image-imports/nothing')).status, 404);
  });

  test("an operator updates an image's minimums and orgs, and the intake applies them to the next request", async () => {
    const updated = await call('operator', 'PATCH', '/api/images/scratch', { min_cores: 3, orgs: ['Globex'], description: 'for experiments' });
    assert.equal(updated.status, 200, JSON.stringify(updated.body));
    assert.equal(updated.body.min_cores, 3);
    const below = await call('operator', 'POST', '/api/device_requests', validRequestBody({ image: 'scratch', client: 'Globex', requester: 'gus@globex.example', cores: 2 }));
    assert.equal(below.status, 400);
    assert.deepEqual(
      below.body.issues.map((i: { field: string; rule: string }) => [i.field, i.rule]),
      [['cores', 'below-image-minimum']],
    );
    assert.equal((await call('acme', 'GET', '/api/images/scratch')).status, 404, 'now reserved to Globex');
    assert.equal((await call('operator', 'PATCH', '/api/images/scratch', { orgs: null })).body.orgs, undefined, 'null: every org again');
    assert.equal((await call('operator', 'PATCH', '/api/images/nothing', { min_cores: 2 })).status, 404);
    assert.equal((await call('operator', 'PATCH', '/api/images/scratch', {})).status, 400, 'an update that changes nothing is a mistake');
  });

  test('a retired image is refused to new requests; deleting an image a running request uses is 409 naming it, an unused one goes and stays gone', async () => {
    const using = await call('operator', 'POST', '/api/device_requests', validRequestBody({ image: 'debian-12' }));
    assert.equal(using.status, 201, JSON.stringify(using.body));

    const retired = await call('operator', 'POST', '/api/images/debian-12/retire');
    assert.equal(retired.status, 200);
    assert.equal(retired.body.retired, true);
    const refused = await call('operator', 'POST', '/api/device_requests', validRequestBody({ image: 'debian-12' }));
    assert.equal(refused.status, 400);
    assert.equal(refused.body.issues[0].rule, 'image-retired');

    const inUse = await call('operator', 'DELETE', '/api/images/debian-12');
    assert.equal(inUse.status, 409, JSON.stringify(inUse.body));
    assert.match(inUse.body.detail, new RegExp(`used by request\\(s\\) ${using.body.serial}`));
    assert.equal((await call('operator', 'GET', '/api/images/debian-12')).status, 200, 'still there');

    assert.equal((await call('operator', 'DELETE', '/api/images/scratch')).status, 204);
    assert.equal((await call('operator', 'GET', '/api/images/scratch')).status, 404);
    assert.equal((await call('operator', 'DELETE', '/api/images/scratch')).status, 404);
    // The next API process seeds again with the same PVEFLOW_IMAGES: a deleted image stays deleted.
    const handle = api.env.client.workflow.getHandle(imageCatalogueWorkflowId(taskQueue));
    await handle.executeUpdate(seedImagesUpdate, { args: [{ images: seed }] });
    assert.deepEqual((await handle.query(catalogueQuery)).entries.map((e) => e.name).sort(), ['debian-12', 'ubuntu']);
  });

  test('an image imported after the newest sync is requestable at once; a request for one with a template per node carries them all for placement', async () => {
    // As the import adds it: its templates recorded per node; no sync has seen them yet.
    const catalogue = api.env.client.workflow.getHandle(imageCatalogueWorkflowId(taskQueue));
    const templates = [
      { node: 'pve1', vmid: 9201, diskGiB: 3 },
      { node: 'pve2', vmid: 9202, diskGiB: 3 },
    ];
    await catalogue.executeUpdate(addImageUpdate, {
      args: [{ name: 'fresh', os: 'Debian 12', template: 9201, templates, origin: 'import', importedBy: imageImportWorkflowId(taskQueue, 'fresh'), addedAt: new Date().toISOString() }],
    });
    const shown = await call('operator', 'GET', '/api/images/fresh');
    assert.equal(shown.status, 200, JSON.stringify(shown.body));
    assert.equal(shown.body.template_vmid, 9201);
    assert.deepEqual(
      shown.body.templates,
      [
        { node: 'pve1', vmid: 9201 },
        { node: 'pve2', vmid: 9202 },
      ],
      'the image shows its template on each node, as the list does',
    );
    const cli = await pveflow(['images', 'show', 'fresh'], { PVEFLOW_API_URL: api.base, PVEFLOW_API_KEY: keys.operator.key });
    assert.equal(cli.code, 0, cli.stderr);
    assert.match(cli.stdout, /templates\s+9201 on pve1, 9202 on pve2/);
    const created = await call('operator', 'POST', '/api/device_requests', validRequestBody({ image: 'fresh' }));
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const started = (await api.env.client.workflow.getHandle(`vm-request-${created.body.serial}`).fetchHistory()).events![0]!.workflowExecutionStartedEventAttributes!.input!.payloads![0]!;
    const { request } = JSON.parse(Buffer.from(started.data!).toString()) as { request: { templateVmid: number; imageTemplates?: unknown; diskGiB?: number } };
    assert.equal(request.templateVmid, 9201);
    assert.deepEqual(request.imageTemplates, [
      { node: 'pve1', vmid: 9201 },
      { node: 'pve2', vmid: 9202 },
    ]);
    assert.equal(request.diskGiB, 3, "the template's disk is the minimum");
  });

  test("deleting an imported image starts the removal of its template; a seeded image's template is left alone", async () => {
    // A template the import made, as the newest sync sees it, and its catalogue entry as the import adds it.
    const synced = syncResult(new Date().toISOString());
    await api.env.client.workflow.execute('clusterSync', {
      taskQueue,
      workflowId: `sync-imported-${run}`,
      args: [{ ...synced, templates: [...synced.templates!, { vmid: 9100, name: 'imported-cloudinit', node: 'pve2', diskGiB: 3 }] }],
    });
    const catalogue = api.env.client.workflow.getHandle(imageCatalogueWorkflowId(taskQueue));
    await catalogue.executeUpdate(addImageUpdate, {
      args: [{ name: 'imported', os: 'Debian 12', template: 9100, origin: 'import', importedBy: imageImportWorkflowId(taskQueue, 'imported'), addedAt: new Date().toISOString() }],
    });
    await waitFor('the sync with the imported template', async () => ((await call('operator', 'GET', '/api/images/imported')).body.template_vmid === 9100 ? true : undefined));

    assert.equal((await call('operator', 'DELETE', '/api/images/imported')).status, 204);
    assert.equal((await call('operator', 'GET', '/api/images/imported')).status, 404);
    const removal = api.env.client.workflow.getHandle(imageTemplateRemovalWorkflowId(taskQueue, 'imported'));
    assert.deepEqual(await removal.result(), { name: 'imported', node: 'pve2', vmid: 9100 });

    // scratch (PVEFLOW_IMAGES, deleted in the test above) started none.
    await assert.rejects(api.env.client.workflow.getHandle(imageTemplateRemovalWorkflowId(taskQueue, 'scratch')).describe(), WorkflowNotFoundError);
  });

  test('the CLI: images import refused naming the field, images update, show and import-status, exit codes as the API answered', async () => {
    const as = { PVEFLOW_API_URL: api.base, PVEFLOW_API_KEY: keys.operator.key };
    const refused = await pveflow(['images', 'import', '--name', 'rocky-9', '--os', 'Rocky 9', '--url', 'ftp://mirror.example/rocky.qcow2', '--checksum', sha256, '--checksum-algorithm', 'sha256'], as);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /url.*only http and https/);
    const updated = await pveflow(['images', 'update', 'ubuntu', '--min-memory-mib', '2048'], as);
    assert.equal(updated.code, 0, updated.stderr);
    const shown = await pveflow(['images', 'show', 'ubuntu', '--json'], as);
    assert.equal(JSON.parse(shown.stdout).min_memory_mib, 2048);
    const none = await pveflow(['images', 'import-status', 'rocky-9'], as);
    assert.equal(none.code, 4, none.stderr);
    const listed = await pveflow(['images', 'list'], as);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /ubuntu/);
  });
});
