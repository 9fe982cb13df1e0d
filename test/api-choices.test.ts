import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { bundleWorkflowCode } from '@temporalio/worker';
import { defaultRequestChoiceSettings, type RequestChoiceSettings } from '../src/requestChoices';
import { signWebhook } from '../src/api/intake/webhookSignature';
import type { ClusterSyncResult } from '../src/contracts/types';
import type { DeviceRequest } from '../src/domain/deviceRequest';
import { startApiOnDevServer, twoOrgsAndOperator, type ApiOnDevServer } from './support/apiOnDevServer';
import { quietLogger } from './support/quietLogger';
import { validRequestBody } from './support/requests';
import { waitFor } from './support/waitFor';

/**
 * The intake of a request's image and choices, on a real Temporal dev server: every refusal is a 400 naming the field
 * (or a 503 before the catalogue is known) and starts nothing; an accepted request carries its image's template and
 * its choices into the workflow. Stand-in workflows: a clusterSync that returns the templates it is given, and a
 * vmRequest that returns the request it was started with.
 */
const run = process.pid.toString(36);
const keys = twoOrgsAndOperator();
type KeyName = keyof typeof keys;

const choices: RequestChoiceSettings = {
  ...defaultRequestChoiceSettings,
  defaultTemplateVmid: 9000,
  images: [
    { name: 'debian-12', template: 9000, os: 'Debian 12', min_memory_mib: 1024 },
    { name: 'ubuntu', template: 'ubuntu-24.04-cloudinit', os: 'Ubuntu 24.04', min_cores: 2, min_memory_mib: 4096, min_disk_gib: 20, orgs: ['Acme Corp'] },
    { name: 'gone', template: 9999 },
  ],
  networks: [{ bridge: 'vmbr0' }, { bridge: 'vmbr1', vlans: { min: 100, max: 199 } }, { bridge: 'vmbr2', orgs: ['Acme Corp'] }],
  limits: { packages: 3, runcmd: 2, writeFiles: 1, bytes: 4096, maxDiskGiB: 100 },
};

const syncResult = (at: string): ClusterSyncResult => ({
  at,
  vmsSeen: 2,
  requestsChecked: 0,
  drifts: [],
  orphans: [],
  orphanCount: 0,
  templates: [
    { vmid: 9000, name: 'debian-12-cloudinit', node: 'pve1', cores: 2, memoryMiB: 2048, diskGiB: 4 },
    { vmid: 9001, name: 'ubuntu-24.04-cloudinit', node: 'pve2', cores: 2, memoryMiB: 2048, diskGiB: 8 },
    { vmid: 9002, name: 'scratch', node: 'pve1', cores: 1, memoryMiB: 1024, diskGiB: 2 },
  ],
});

describe('intake of images and choices', () => {
  let api: ApiOnDevServer<KeyName>;
  let stubDir: string;
  const taskQueue = `choices-${run}`;
  const accepted: string[] = [];
  const call = (who: KeyName, method: string, path: string, body?: unknown) => api.call(who, method, path, body);

  before(async () => {
    stubDir = mkdtempSync(join(tmpdir(), 'pveflow-choices-'));
    writeFileSync(
      join(stubDir, 'workflows.js'),
      'exports.clusterSync = async function clusterSync(result) { return result; };\nexports.vmRequest = async function vmRequest(input) { return input.request; };\n' +
        // The real image catalogue: the API reads (and seeds) it wherever it checks an image.
        `exports.imageCatalogue = require(${JSON.stringify(resolve(__dirname, '..', 'src', 'workflows', 'imageCatalogue.ts'))}).imageCatalogue;\n`,
    );
    const workflowBundle = await bundleWorkflowCode({
      workflowsPath: join(stubDir, 'workflows.js'),
      logger: quietLogger,
      webpackConfigHook: (config) => ({ ...config, resolve: { ...config.resolve, modules: [...(config.resolve?.modules ?? ['node_modules']), resolve(__dirname, '..', 'node_modules')] } }),
    });
    api = await startApiOnDevServer({ taskQueue, keys, choices, workflowBundle });
  });

  after(async () => {
    await api?.stop();
    if (stubDir) rmSync(stubDir, { recursive: true, force: true });
  });

  const submit = async (overrides: Record<string, unknown>, who: KeyName = 'operator') => {
    const answer = await call(who, 'POST', '/api/device_requests', validRequestBody(overrides));
    if (answer.status === 201) accepted.push(answer.body.serial);
    return answer;
  };
  /**
   * A 400 whose issues name exactly these fields, each reason matching, and each the rule given (a check the schema
   * states, by its pattern or bounds, names none).
   */
  const refused = async (overrides: Record<string, unknown>, expected: Record<string, RegExp | { reason: RegExp; rule: string }>, who: KeyName = 'operator') => {
    const answer = await submit(overrides, who);
    assert.equal(answer.status, 400, JSON.stringify(answer.body));
    assert.deepEqual(answer.body.issues.map((i: { field: string }) => i.field).sort(), Object.keys(expected).sort(), JSON.stringify(answer.body.issues));
    for (const issue of answer.body.issues as Array<{ field: string; reason: string; rule?: string }>) {
      const want = expected[issue.field]!;
      assert.match(issue.reason, want instanceof RegExp ? want : want.reason, issue.field);
      assert.equal(issue.rule, want instanceof RegExp ? undefined : want.rule, issue.field);
    }
  };
  const startedWith = (serial: string) => api.env.client.workflow.getHandle(`vm-request-${serial}`).result() as Promise<DeviceRequest>;

  test('before the first cluster sync: naming an image is 503 and starts nothing; naming none builds from the default template unchecked', async () => {
    const early = await submit({ image: 'debian-12' });
    assert.equal(early.status, 503);
    assert.match(early.body.detail, /cluster sync.*nothing was created/);
    assert.equal((await call('operator', 'GET', '/api/images')).status, 503);
    const plain = await submit({ memory_mib: 512 });
    assert.equal(plain.status, 201);
    assert.equal((await startedWith(plain.body.serial)).templateVmid, undefined);

    await api.env.client.workflow.execute('clusterSync', { taskQueue, workflowId: `sync-${run}`, args: [syncResult(new Date().toISOString())] });
    await waitFor('the sync to be visible', async () => ((await call('operator', 'GET', '/api/images')).status === 200 ? true : undefined));
  });

  test('GET /api/images: each org sees the images offered to it; operators see all, with their orgs', async () => {
    const forGlobex = await call('globex', 'GET', '/api/images');
    assert.deepEqual(
      forGlobex.body.images.map((i: { name: string }) => i.name),
      ['debian-12'],
    );
    assert.equal('orgs' in forGlobex.body.images[0], false);
    const forOps = await call('operator', 'GET', '/api/images');
    assert.deepEqual(
      forOps.body.images.map((i: Record<string, unknown>) => [i.name, i.template_vmid, i.min_cores, i.min_memory_mib, i.min_disk_gib, i.orgs, i.default]),
      [
        ['debian-12', 9000, 1, 1024, 4, undefined, true],
        ['ubuntu', 9001, 2, 4096, 20, ['Acme Corp'], false],
      ],
    );
  });

  test('GET /api/templates: each org sees the templates behind the images offered to it; operators see all', async () => {
    const vmids = async (who: KeyName) => (await call(who, 'GET', '/api/templates')).body.templates.map((t: { vmid: number }) => t.vmid);
    assert.deepEqual(await vmids('globex'), [9000], 'ubuntu (9001) is reserved to Acme Corp');
    assert.deepEqual(await vmids('acme'), [9000, 9001]);
    assert.deepEqual(await vmids('operator'), [9000, 9001, 9002], 'operators see the pool, templates behind no image too');
  });

  test('a network reserved to other organisations is refused naming network', async () => {
    await refused({ network: { bridge: 'vmbr2' }, client: 'Globex', requester: 'gus@globex.example' }, { network: { reason: /reserved to other organisations than Globex/, rule: 'network-not-offered' } }, 'globex');
    assert.equal((await submit({ network: { bridge: 'vmbr2' } }, 'acme')).status, 201);
  });

  test('an unknown image, or one whose template left the pool, is refused naming image', async () => {
    await refused({ image: 'nope' }, { image: { reason: /no image nope; images: debian-12, ubuntu/, rule: 'image-unknown' } });
    await refused({ image: 'gone' }, { image: { reason: /template 9999 is not in the pool/, rule: 'image-template-missing' } });
    await refused({ image: 'Not An Image' }, { image: /lower-case/ });
  });

  test('an image not offered to the org is refused naming image', async () => {
    await refused({ image: 'ubuntu', client: 'Globex', requester: 'gus@globex.example' }, { image: { reason: /not offered to Globex/, rule: 'image-not-offered' } }, 'globex');
  });

  test("a request below its image's minimums is refused naming each field", async () => {
    await refused(
      { image: 'ubuntu', cores: 1, memory_mib: 2048, disk_gib: 10 },
      {
        cores: { reason: /below image ubuntu's minimum of 2/, rule: 'below-image-minimum' },
        memory_mib: { reason: /minimum of 4096 MiB/, rule: 'below-image-minimum' },
        disk_gib: { reason: /minimum of 20 GiB/, rule: 'below-image-minimum' },
      },
    );
    await refused({ memory_mib: 512 }, { memory_mib: { reason: /below image debian-12's minimum of 1024 MiB/, rule: 'below-image-minimum' } }, 'acme');
  });

  test('a network off the allowed list is refused naming network.bridge or network.vlan', async () => {
    await refused({ network: { bridge: 'vmbr9' } }, { 'network.bridge': { reason: /bridge vmbr9 is not allowed; allowed: vmbr0 untagged, vmbr1 VLAN 100-199/, rule: 'network-not-allowed' } });
    await refused({ network: { bridge: 'vmbr1', vlan: 300 } }, { 'network.vlan': { reason: /VLAN 300 is not allowed on vmbr1/, rule: 'network-not-allowed' } });
    await refused({ network: { bridge: 'vmbr1', vlan: 5000 } }, { 'network.vlan': /4094/ });
  });

  test('choices beyond the configured limits are refused naming the field and the setting', async () => {
    await refused({ cloud_init: { packages: ['a', 'b', 'c', 'd'] } }, { 'cloud_init.packages': { reason: /at most 3 \(CLOUD_INIT_MAX_PACKAGES\), 4 given/, rule: 'choice-limit' } });
    await refused({ cloud_init: { runcmd: ['a', 'b', 'c'] } }, { 'cloud_init.runcmd': { reason: /CLOUD_INIT_MAX_RUNCMD/, rule: 'choice-limit' } });
    await refused({ cloud_init: { write_files: [{ path: '/opt/a', content: 'x'.repeat(5000) }] } }, { cloud_init: { reason: /CLOUD_INIT_MAX_BYTES/, rule: 'choice-limit' } });
    await refused({ disk_gib: 101 }, { disk_gib: { reason: /at most 100 GiB \(REQUEST_MAX_DISK_GIB\)/, rule: 'choice-limit' } });
  });

  test("a fragment that reaches for pveflow's users, passwords, agent or enrolment is refused naming the key", async () => {
    await refused({ cloud_init: { cloud_config: { users: [{ name: 'mallory', sudo: 'ALL=(ALL) NOPASSWD:ALL' }] } } }, { 'cloud_init.cloud_config.users': { reason: /generated logins/, rule: 'pveflow-key' } });
    await refused({ cloud_init: { cloud_config: { chpasswd: { expire: false } } } }, { 'cloud_init.cloud_config.chpasswd': { reason: /generated logins/, rule: 'pveflow-key' } });
    await refused({ cloud_init: { cloud_config: { runcmd: ['systemctl stop qemu-guest-agent'] } } }, { 'cloud_init.cloud_config.runcmd': { reason: /use cloud_init.runcmd/, rule: 'pveflow-key' } });
    await refused({ cloud_init: { cloud_config: { power_state: { mode: 'poweroff' } } } }, { 'cloud_init.cloud_config.power_state': { reason: /guest agent/, rule: 'pveflow-key' } });
    await refused({ cloud_init: { cloud_config: { bootcmd: ['true'] } } }, { 'cloud_init.cloud_config.bootcmd': { reason: /not a key pveflow passes on/, rule: 'cloud-config-key' } });
    await refused({ cloud_init: { write_files: [{ path: '/etc/netbird/config.json', content: '{}' }] } }, { 'cloud_init.write_files.0.path': { reason: /pveflow's/, rule: 'protected-path' } });
    await refused({ cloud_init: { write_files: [{ path: '/usr/local/bin/netbird', content: '#!/bin/sh' }] } }, { 'cloud_init.write_files.0.path': { reason: /NetBird/, rule: 'protected-path' } });
    await refused({ cloud_init: { write_files: [{ path: '/etc/hosts', content: '' }] } }, { 'cloud_init.write_files.0.path': { reason: /allowed/, rule: 'path-not-allowed' } });
    await refused({ cloud_init: { cloud_config: { swap: { filename: '/etc/shadow', size: 'auto' } } } }, { 'cloud_init.cloud_config.swap': { reason: /swap/, rule: 'cloud-config-key' } });
    await refused({ cloud_init: { cloud_config: { mounts: [['tmpfs', '/etc/ssh', 'tmpfs']] } } }, { 'cloud_init.cloud_config.mounts': { reason: /mount/, rule: 'cloud-config-key' } });
    // JSON's __proto__ is an own key like any other: refused, not dropped.
    await refused({ cloud_init: { cloud_config: JSON.parse('{"__proto__": {"users": []}}') } }, { 'cloud_init.cloud_config.__proto__': { reason: /not a key pveflow passes on/, rule: 'cloud-config-key' } });
    await refused({ cloud_init: { cloud_config: { constructor: 'x' } } }, { 'cloud_init.cloud_config.constructor': { reason: /not a key pveflow passes on/, rule: 'cloud-config-key' } });
    await refused({ cloud_init: { packages: ['nginx && curl evil'] } }, { 'cloud_init.packages.0': /package name/ });
  });

  test('template_vmid is not taken from the wire: the image names what to clone', async () => {
    await refused({ template_vmid: 9001 }, { template_vmid: /unknown field/ });
  });

  test('a class is checked the same way before any member starts', async () => {
    const answer = await call('operator', 'POST', '/api/classes', { ...validRequestBody({ name: 'lab', network: { bridge: 'vmbr9' } }), count: 3 });
    assert.equal(answer.status, 400);
    assert.deepEqual(
      answer.body.issues.map((i: { field: string; rule?: string }) => [i.field, i.rule]),
      [['network.bridge', 'network-not-allowed']],
    );
  });

  test('a webhook delivery is checked the same way', async () => {
    const raw = JSON.stringify(validRequestBody({ image: 'ubuntu', client: 'Globex', requester: 'gus@globex.example' }));
    const id = `delivery-${run}-choices`;
    const res = await fetch(`${api.base}/api/hooks/device_requests`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-pveflow-delivery': id, 'x-pveflow-signature': signWebhook('whsec-test', id, raw) },
      body: raw,
      signal: AbortSignal.timeout(30_000),
    });
    const answer = { status: res.status, headers: res.headers, body: (await res.json()) as { issues?: unknown } };
    api.checker.check('POST', '/api/hooks/device_requests', answer);
    assert.equal(answer.status, 400, JSON.stringify(answer.body));
    assert.deepEqual(answer.body.issues, [{ field: 'image', reason: 'image ubuntu is not offered to Globex', rule: 'image-not-offered' }]);
  });

  test("an accepted request carries its image's template, the image's minimum disk and its choices into the workflow", async () => {
    const cloudInit = { packages: ['nginx'], runcmd: [['systemctl', 'enable', '--now', 'nginx']], write_files: [{ path: '/etc/motd', content: 'lab' }], cloud_config: { timezone: 'Europe/Paris' } };
    const answer = await submit({ image: 'ubuntu', cores: 2, memory_mib: 4096, network: { bridge: 'vmbr1', vlan: 150 }, cloud_init: cloudInit }, 'acme');
    assert.equal(answer.status, 201, JSON.stringify(answer.body));
    const request = await startedWith(answer.body.serial);
    assert.equal(request.image, 'ubuntu');
    assert.equal(request.templateVmid, 9001);
    assert.equal(request.diskGiB, 20, 'no disk asked: grown to the image minimum');
    assert.deepEqual(request.network, { bridge: 'vmbr1', vlan: 150 });
    assert.deepEqual(request.cloudInit, cloudInit);

    const plain = await submit({ memory_mib: 2048, disk_gib: 50 });
    assert.equal(plain.status, 201);
    const asDefault = await startedWith(plain.body.serial);
    assert.equal(asDefault.templateVmid, 9000, 'no image: the default image');
    assert.equal(asDefault.diskGiB, 50);
  });

  test('no refused submission started a workflow', async () => {
    const listed = async () => {
      const ids: string[] = [];
      for await (const wf of api.env.client.workflow.list({ query: `WorkflowType = "vmRequest" AND TaskQueue = "${taskQueue}"` })) ids.push(wf.workflowId);
      return ids;
    };
    const expected = accepted.map((s) => `vm-request-${s}`).sort();
    const ids = await waitFor('the accepted requests to be visible', async () => {
      const seen = await listed();
      return expected.every((id) => seen.includes(id)) ? seen : undefined;
    });
    assert.deepEqual(ids.sort(), expected);
  });
});
