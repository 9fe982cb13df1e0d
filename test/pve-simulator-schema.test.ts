import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { generate } from 'selfsigned';
import { Agent, fetch } from 'undici';
import { createPveSimulator, defaultClusterSeed, implementedRoutes, ROOT_TOKEN_ID, zeroTiming } from '../src/simulators/pve';

/**
 * A walk over every endpoint the simulator implements: one request with a single invalid parameter must be a 400
 * naming that parameter (the schema, not hand-written code, rejects it), and a minimal valid request must pass
 * validation. A new route without a row here fails the coverage test.
 */
const SECRET = 'root-secret';

interface Row {
  route: string;
  path: string;
  bad: Record<string, string>;
  badParam: string;
  badText: RegExp;
  good?: Record<string, string>;
  /** A minimal valid call that needs repeated keys (an array parameter), as a raw form. */
  goodForm?: string;
}

let upid = '';

const rows = (): Row[] => [
  { route: 'GET /version', path: '/version', bad: { verbose: '1' }, badParam: 'verbose', badText: /not defined in schema/ },
  { route: 'GET /nodes', path: '/nodes', bad: { x: '1' }, badParam: 'x', badText: /not defined in schema/ },
  { route: 'GET /nodes/{node}/status', path: '/nodes/pve1/status', bad: { full: '1' }, badParam: 'full', badText: /not defined in schema/ },
  { route: 'GET /cluster/resources', path: '/cluster/resources', bad: { type: 'vms' }, badParam: 'type', badText: /^value 'vms' does not have a value in the enumeration 'vm, storage, node, sdn'$/, good: { type: 'vm' } },
  { route: 'GET /cluster/nextid', path: '/cluster/nextid', bad: { vmid: 'abc' }, badParam: 'vmid', badText: /^type check \('integer'\) failed - got 'abc'$/, good: { vmid: '777' } },
  { route: 'GET /pools', path: '/pools', bad: { poolid: '1pool' }, badParam: 'poolid', badText: /^invalid format - pool name '1pool' contains invalid characters\n$/, good: { poolid: 'pveflow' } },
  {
    route: 'POST /nodes/{node}/qemu/{vmid}/clone',
    path: '/nodes/pve1/qemu/9000/clone',
    bad: { newid: '99' },
    badParam: 'newid',
    badText: /^(value must have a minimum value of 100|invalid format - value does not look like a valid VM ID\n)$/,
    good: { newid: '300' },
  },
  { route: 'GET /nodes/{node}/qemu/{vmid}/config', path: '/nodes/pve1/qemu/9000/config', bad: { current: '2' }, badParam: 'current', badText: /^type check \('boolean'\) failed - got '2'$/ },
  { route: 'PUT /nodes/{node}/qemu/{vmid}/config', path: '/nodes/pve1/qemu/300/config', bad: { cores: '0' }, badParam: 'cores', badText: /^value must have a minimum value of 1$/, good: { cores: '2' } },
  {
    route: 'POST /nodes/{node}/qemu/{vmid}/config',
    path: '/nodes/pve1/qemu/300/config',
    bad: { name: 'web_1' },
    badParam: 'name',
    badText: /^invalid format - value does not look like a valid DNS name\n$/,
    good: { name: 'web-1' },
  },
  { route: 'GET /nodes/{node}/qemu/{vmid}/status/current', path: '/nodes/pve1/qemu/300/status/current', bad: { verbose: '1' }, badParam: 'verbose', badText: /not defined in schema/ },
  {
    route: 'POST /nodes/{node}/qemu/{vmid}/status/start',
    path: '/nodes/pve1/qemu/300/status/start',
    bad: { timeout: 'soon' },
    badParam: 'timeout',
    badText: /^type check \('integer'\) failed - got 'soon'$/,
    good: { timeout: '30' },
  },
  { route: 'POST /nodes/{node}/qemu/{vmid}/status/stop', path: '/nodes/pve1/qemu/300/status/stop', bad: { timeout: '-1' }, badParam: 'timeout', badText: /^value must have a minimum value of 0$/ },
  {
    route: 'POST /nodes/{node}/qemu/{vmid}/status/shutdown',
    path: '/nodes/pve1/qemu/300/status/shutdown',
    bad: { forceStop: 'yes' },
    badParam: 'forceStop',
    badText: /^type check \('boolean'\) failed - got 'yes'$/,
    good: { forceStop: '1' },
  },
  { route: 'POST /nodes/{node}/qemu/{vmid}/agent/ping', path: '/nodes/pve1/qemu/300/agent/ping', bad: { command: 'ping' }, badParam: 'command', badText: /not defined in schema/ },
  { route: 'GET /nodes/{node}/qemu/{vmid}/agent/network-get-interfaces', path: '/nodes/pve1/qemu/300/agent/network-get-interfaces', bad: { all: '1' }, badParam: 'all', badText: /not defined in schema/ },
  { route: 'GET /nodes/{node}/qemu/{vmid}/agent/get-osinfo', path: '/nodes/pve1/qemu/300/agent/get-osinfo', bad: { all: '1' }, badParam: 'all', badText: /not defined in schema/ },
  { route: 'GET /nodes/{node}/qemu/{vmid}/agent/get-host-name', path: '/nodes/pve1/qemu/300/agent/get-host-name', bad: { all: '1' }, badParam: 'all', badText: /not defined in schema/ },
  {
    route: 'POST /nodes/{node}/qemu/{vmid}/agent',
    path: '/nodes/pve1/qemu/300/agent',
    bad: { command: 'reboot' },
    badParam: 'command',
    badText: /^value 'reboot' does not have a value in the enumeration/,
    good: { command: 'get-osinfo' },
  },
  {
    route: 'POST /nodes/{node}/qemu/{vmid}/agent/exec',
    path: '/nodes/pve1/qemu/300/agent/exec',
    bad: { command: 'ls' },
    badParam: 'command',
    badText: /^type check \('array'\) failed/,
    goodForm: 'command=ls&command=-l',
  },
  { route: 'GET /nodes/{node}/qemu/{vmid}/agent/exec-status', path: '/nodes/pve1/qemu/300/agent/exec-status', bad: { pid: 'x' }, badParam: 'pid', badText: /type check \('integer'\) failed/, good: { pid: '1' } },
  {
    route: 'GET /nodes/{node}/qemu/{vmid}/agent/file-read',
    path: '/nodes/pve1/qemu/300/agent/file-read',
    bad: { file: '/etc/hostname', all: '1' },
    badParam: 'all',
    badText: /not defined in schema/,
    good: { file: '/etc/hostname' },
  },
  { route: 'GET /cluster/status', path: '/cluster/status', bad: { x: '1' }, badParam: 'x', badText: /not defined in schema/ },
  { route: 'GET /nodes/{node}/tasks/{upid}/status', path: `/nodes/pve1/tasks/${encodeURIComponent(upid)}/status`, bad: { verbose: '1' }, badParam: 'verbose', badText: /not defined in schema/ },
  {
    route: 'GET /nodes/{node}/tasks/{upid}/log',
    path: `/nodes/pve1/tasks/${encodeURIComponent(upid)}/log`,
    bad: { limit: '-1' },
    badParam: 'limit',
    badText: /^value must have a minimum value of 0$/,
    good: { start: '0', limit: '0' },
  },
  { route: 'DELETE /nodes/{node}/tasks/{upid}', path: `/nodes/pve1/tasks/${encodeURIComponent(upid)}`, bad: { x: '1' }, badParam: 'x', badText: /not defined in schema/ },
  {
    route: 'GET /nodes/{node}/tasks',
    path: '/nodes/pve1/tasks',
    bad: { source: 'old' },
    badParam: 'source',
    badText: /^value 'old' does not have a value in the enumeration 'archive, active, all'$/,
    good: { source: 'all', vmid: '300' },
  },
  { route: 'GET /nodes/{node}/storage', path: '/nodes/pve1/storage', bad: { content: 'images,movies' }, badParam: 'content', badText: /^invalid format - invalid content type 'movies'\n$/, good: { content: 'images' } },
  {
    route: 'GET /nodes/{node}/storage/{storage}/content',
    path: '/nodes/pve1/storage/local/content',
    bad: { content: 'movies' },
    badParam: 'content',
    badText: /^invalid format - invalid content type 'movies'\n$/,
    good: { content: 'snippets' },
  },
  {
    route: 'POST /nodes/{node}/storage/{storage}/download-url',
    path: '/nodes/pve1/storage/local/download-url',
    bad: { content: 'import', url: 'ftp://127.0.0.1/a.qcow2', filename: 'a.qcow2' },
    badParam: 'url',
    badText: /^value does not match the regex pattern$/,
    good: { content: 'import', url: 'http://127.0.0.1:9/a.qcow2', filename: 'a.qcow2' },
  },
  {
    route: 'DELETE /nodes/{node}/storage/{storage}/content/{volume}',
    path: `/nodes/pve1/storage/local/content/${encodeURIComponent('local:import/none.raw')}`,
    bad: { delay: '0' },
    badParam: 'delay',
    badText: /^value must have a minimum value of 1$/,
  },
  { route: 'GET /nodes/{node}/sdn/zones/{zone}/content', path: '/nodes/pve1/sdn/zones/localnetwork/content', bad: { x: '1' }, badParam: 'x', badText: /not defined in schema/ },
  {
    route: 'POST /nodes/{node}/qemu',
    path: '/nodes/pve1/qemu',
    bad: { vmid: '99' },
    badParam: 'vmid',
    badText: /^(value must have a minimum value of 100|invalid format - value does not look like a valid VM ID\n)$/,
    good: { vmid: '301', memory: '512' },
  },
  { route: 'GET /nodes/{node}/qemu', path: '/nodes/pve1/qemu', bad: { full: '2' }, badParam: 'full', badText: /^type check \('boolean'\) failed - got '2'$/, good: { full: '1' } },
  { route: 'GET /nodes/{node}/qemu/{vmid}', path: '/nodes/pve1/qemu/300', bad: { x: '1' }, badParam: 'x', badText: /not defined in schema/ },
  { route: 'GET /nodes/{node}/qemu/{vmid}/pending', path: '/nodes/pve1/qemu/300/pending', bad: { x: '1' }, badParam: 'x', badText: /not defined in schema/ },
  {
    route: 'PUT /nodes/{node}/qemu/{vmid}/resize',
    path: '/nodes/pve1/qemu/300/resize',
    bad: { disk: 'scsi99', size: '1G' },
    badParam: 'disk',
    badText: /^value 'scsi99' does not have a value in the enumeration/,
    good: { disk: 'scsi0', size: '+1G' },
  },
  { route: 'POST /nodes/{node}/qemu/{vmid}/status/reboot', path: '/nodes/pve1/qemu/300/status/reboot', bad: { timeout: 'x' }, badParam: 'timeout', badText: /^type check \('integer'\) failed - got 'x'$/ },
  { route: 'POST /nodes/{node}/qemu/{vmid}/status/reset', path: '/nodes/pve1/qemu/300/status/reset', bad: { skiplock: '2' }, badParam: 'skiplock', badText: /^type check \('boolean'\) failed - got '2'$/ },
  { route: 'POST /nodes/{node}/qemu/{vmid}/status/suspend', path: '/nodes/pve1/qemu/300/status/suspend', bad: { todisk: '2' }, badParam: 'todisk', badText: /^type check \('boolean'\) failed - got '2'$/ },
  { route: 'POST /nodes/{node}/qemu/{vmid}/status/resume', path: '/nodes/pve1/qemu/300/status/resume', bad: { nocheck: '2' }, badParam: 'nocheck', badText: /^type check \('boolean'\) failed - got '2'$/ },
  {
    route: 'GET /nodes/{node}/qemu/{vmid}/migrate',
    path: '/nodes/pve1/qemu/300/migrate',
    bad: { target: '-x' },
    badParam: 'target',
    badText: /^invalid format - value does not look like a valid node name\n$/,
    good: { target: 'pve2' },
  },
  {
    route: 'POST /nodes/{node}/qemu/{vmid}/migrate',
    path: '/nodes/pve1/qemu/300/migrate',
    bad: { target: 'pve2', online: 'yes' },
    badParam: 'online',
    badText: /^type check \('boolean'\) failed - got 'yes'$/,
    good: { target: 'pve9' },
  },
  { route: 'GET /nodes/{node}/qemu/{vmid}/snapshot', path: '/nodes/pve1/qemu/300/snapshot', bad: { x: '1' }, badParam: 'x', badText: /not defined in schema/ },
  {
    route: 'POST /nodes/{node}/qemu/{vmid}/snapshot',
    path: '/nodes/pve1/qemu/300/snapshot',
    bad: { snapname: '1abc' },
    badParam: 'snapname',
    badText: /^invalid format - invalid configuration ID '1abc'\n$/,
    good: { snapname: 's1' },
  },
  { route: 'GET /nodes/{node}/qemu/{vmid}/snapshot/{snapname}', path: '/nodes/pve1/qemu/300/snapshot/s1', bad: { x: '1' }, badParam: 'x', badText: /not defined in schema/ },
  {
    route: 'POST /nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback',
    path: '/nodes/pve1/qemu/300/snapshot/s1/rollback',
    bad: { start: '2' },
    badParam: 'start',
    badText: /^type check \('boolean'\) failed - got '2'$/,
  },
  { route: 'DELETE /nodes/{node}/qemu/{vmid}/snapshot/{snapname}', path: '/nodes/pve1/qemu/300/snapshot/s1', bad: { force: '2' }, badParam: 'force', badText: /^type check \('boolean'\) failed - got '2'$/ },
  { route: 'GET /access/permissions', path: '/access/permissions', bad: { userid: 'no-realm' }, badParam: 'userid', badText: /^value does not match the regex pattern$/, good: { path: '/pool/pveflow' } },
  { route: 'GET /cluster/ha/resources', path: '/cluster/ha/resources', bad: { type: 'vms' }, badParam: 'type', badText: /^value 'vms' does not have a value in the enumeration/, good: { type: 'vm' } },
  {
    route: 'POST /cluster/ha/resources',
    path: '/cluster/ha/resources',
    bad: { sid: 'vm:300', state: 'on' },
    badParam: 'state',
    badText: /^value 'on' does not have a value in the enumeration/,
    good: { sid: 'vm:300', state: 'stopped' },
  },
  { route: 'GET /cluster/ha/resources/{sid}', path: '/cluster/ha/resources/vm:300', bad: { x: '1' }, badParam: 'x', badText: /not defined in schema/ },
  { route: 'DELETE /cluster/ha/resources/{sid}', path: '/cluster/ha/resources/vm:300', bad: { purge: '2' }, badParam: 'purge', badText: /^type check \('boolean'\) failed - got '2'$/ },
  { route: 'POST /nodes/{node}/qemu/{vmid}/template', path: '/nodes/pve1/qemu/300/template', bad: { disk: 'scsi99' }, badParam: 'disk', badText: /^value 'scsi99' does not have a value in the enumeration/ },
  { route: 'DELETE /nodes/{node}/qemu/{vmid}', path: '/nodes/pve1/qemu/300', bad: { purge: '2' }, badParam: 'purge', badText: /^type check \('boolean'\) failed - got '2'$/, good: { purge: '1' } },
];

let url = '';
let agent: Agent;
let close: () => Promise<void>;
let snippets = '';

before(async () => {
  const pems = await generate([{ name: 'commonName', value: '127.0.0.1' }], {
    keySize: 2048,
    algorithm: 'sha256',
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] }],
  } as Parameters<typeof generate>[1]);
  snippets = mkdtempSync(join(tmpdir(), 'pve-sim-schema-'));
  const sim = createPveSimulator({
    seed: defaultClusterSeed({ tokenSecret: 'unused', rootTokenSecret: SECRET }),
    timing: zeroTiming,
    snippetsDir: () => snippets,
  });
  const server = await sim.listen({ tls: { key: pems.private, cert: pems.cert } });
  url = server.url;
  close = server.close;
  agent = new Agent({ connect: { ca: pems.cert } });
});

after(async () => {
  await close();
  await agent.close();
  rmSync(snippets, { recursive: true, force: true });
});

async function call(method: string, path: string, params: Record<string, string> | string) {
  const form = typeof params === 'string' ? params : new URLSearchParams(params).toString();
  const inQuery = method === 'GET' || method === 'DELETE';
  const res = await fetch(`${url}${path}${inQuery && form ? `?${form}` : ''}`, {
    method,
    dispatcher: agent,
    signal: AbortSignal.timeout(10_000),
    headers: { authorization: `PVEAPIToken=${ROOT_TOKEN_ID}=${SECRET}`, ...(inQuery ? {} : { 'content-type': 'application/x-www-form-urlencoded' }) },
    body: inQuery ? undefined : form,
  });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as { data: unknown; errors?: Record<string, string> }) : undefined };
}

test('every implemented route has a row in the walk', () => {
  assert.deepEqual(
    rows()
      .map((r) => r.route)
      .sort(),
    [...implementedRoutes].sort(),
  );
});

test('each route rejects one invalid parameter by name and accepts a minimal valid call', async () => {
  // The walk creates VM 300 (clone) first and destroys it last, so every VM-level row has a VM to talk to.
  // Rows are rebuilt per step: the task rows need the UPID of the clone made earlier in the walk.
  for (let i = 0; i < rows().length; i++) {
    const row = rows()[i]!;
    const method = row.route.split(' ')[0]!;
    const bad = await call(method, row.path, row.bad);
    assert.equal(bad.status, 400, `${row.route} with ${JSON.stringify(row.bad)}`);
    assert.deepEqual(Object.keys(bad.body!.errors ?? {}), [row.badParam], row.route);
    assert.match(bad.body!.errors![row.badParam]!, row.badText, row.route);

    const good = await call(method, row.path, row.goodForm ?? row.good ?? {});
    assert.notEqual(good.status, 400, `${row.route} minimal call: ${JSON.stringify(good.body)}`);
    assert.ok(good.status === 200 || good.status === 500, `${row.route}: ${good.status}`);
    if (row.route === 'POST /nodes/{node}/qemu/{vmid}/clone') {
      upid = good.body!.data as string;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
});
