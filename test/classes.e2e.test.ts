import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { generateApiKey } from '../src/api/auth/apiKeys';
import type { EmbeddedStack } from '../src/embedded/stack';
import { pveflow } from './support/cliRunner';
import { validRequestBody } from './support/requests';
import { waitFor } from './support/waitFor';
import { startTestStack, type TestStack } from './support/testStack';

/**
 * A class (a lab of N identical VMs) through the HTTP API of the embedded default: one submission makes N requests,
 * a retry with the same Idempotency-Key makes none, one approval builds them all (under the clone slots), one
 * completion removes them all. Another org never sees the class.
 */

const SIZE = 4;

describe('classes: N identical VMs as one submission', () => {
  let stack: EmbeddedStack;
  let running: TestStack | undefined;
  const keys = {
    requester: { id: 'rita', role: 'requester', org: 'Acme Corp', email: 'rita@acme.example', key: generateApiKey() },
    admin: { id: 'ada', role: 'admin', org: 'Acme Corp', email: 'admin@acme.example', key: generateApiKey() },
    other: { id: 'gus', role: 'requester', org: 'Globex', email: 'gus@globex.example', key: generateApiKey() },
  };

  const api = async (method: string, path: string, as: keyof typeof keys, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(`${stack.apiUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${keys[as].key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : undefined };
  };

  before(async () => {
    running = await startTestStack('classes', Object.values(keys), { PVE_CLONE_LIMIT_PER_STORAGE: '2' });
    stack = running.stack;
  });

  after(async () => {
    await running?.stop();
  });

  test('bad classes are refused at the field, and nothing is started', async () => {
    const one = await api('POST', '/api/classes', 'requester', { ...validRequestBody({ name: 'lab' }), count: 1 });
    assert.equal(one.status, 400);
    assert.deepEqual(
      one.body.issues.map((i: { field: string }) => i.field),
      ['count'],
    );
    const long = await api('POST', '/api/classes', 'requester', { ...validRequestBody({ name: 'a'.repeat(38) }), count: 3 });
    assert.equal(long.status, 400);
    assert.match(JSON.stringify(long.body.issues), /"field":"name".*-NN suffix/);
    const other = await api('POST', '/api/classes', 'other', { ...validRequestBody({ name: 'lab' }), count: 3 });
    assert.equal(other.status, 403, 'Globex may not submit for Acme');
    const listed = await api('GET', '/api/device_requests', 'admin');
    assert.equal(listed.body.items.length, 0);
  });

  test('one submission, one approval, one completion for the whole class', async () => {
    const body = { ...validRequestBody({ name: 'lab', consultants: ['alice@consultancy.example'] }), count: SIZE };
    const idempotency = { 'idempotency-key': `class-${process.pid}-lab` };
    const created = await api('POST', '/api/classes', 'requester', body, idempotency);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const classId: string = created.body.class;
    assert.match(classId, /^CL-[0-9A-Z]{5}$/);
    assert.deepEqual(
      created.body.requests.map((r: { name: string }) => r.name),
      ['lab-01', 'lab-02', 'lab-03', 'lab-04'],
    );
    const serials: string[] = created.body.requests.map((r: { serial: string }) => r.serial).sort();
    assert.equal(new Set(serials).size, SIZE);

    const again = await api('POST', '/api/classes', 'requester', body, idempotency);
    assert.equal(again.status, 200, 'a retry with the same key creates nothing');
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    assert.deepEqual(again.body.requests.map((r: { serial: string }) => r.serial).sort(), serials);
    // Issue 27: the same key with another body is not a retry: 409, and nothing is made or replayed.
    const otherBody = await api('POST', '/api/classes', 'requester', { ...body, cores: body.cores + 1 }, idempotency);
    assert.equal(otherBody.status, 409, JSON.stringify(otherBody.body));
    assert.match(otherBody.body.detail, /Idempotency-Key .* was already used for class CL-[0-9A-Z]{5} with a different body/);

    const members = await api('GET', `/api/classes/${classId}`, 'requester');
    assert.equal(members.status, 200);
    // In the class's order, each with its name: what tells the VMs apart.
    const byName: string[] = created.body.requests.map((r: { serial: string }) => r.serial);
    assert.deepEqual(
      members.body.requests.map((r: { serial: string; name: string }) => [r.serial, r.name]),
      byName.map((serial, i) => [serial, `lab-0${i + 1}`]),
    );
    assert.ok(members.body.requests.every((r: { class: string }) => r.class === classId));
    assert.equal((await api('GET', `/api/classes/${classId}`, 'other')).status, 404, 'another org does not see the class');
    assert.equal((await api('POST', `/api/classes/${classId}/approve`, 'requester', {})).status, 403, 'a requester cannot approve');

    // The command line does the same through the same API.
    const cli = (as: keyof typeof keys, ...args: string[]) => pveflow(args, { PVEFLOW_API_URL: stack.apiUrl, PVEFLOW_API_KEY: keys[as].key });
    const shown = await cli('requester', 'classes', 'show', classId, '--json');
    assert.equal(shown.code, 0, shown.stderr);
    assert.deepEqual(
      JSON.parse(shown.stdout).requests.map((r: { serial: string }) => r.serial),
      byName,
    );
    const tooSmall = await cli(
      'requester',
      'classes',
      'new',
      '--count',
      '1',
      '--name',
      'lab',
      '--client',
      'Acme Corp',
      '--requester',
      'rita@acme.example',
      '--consultant',
      'alice@consultancy.example',
      '--start',
      'now',
      '--end',
      '+1d',
    );
    assert.equal(tooSmall.code, 2, 'refused before sending');
    assert.match(tooSmall.stderr, /--count must be 2-50/);
    const approved = await cli('admin', 'classes', 'approve', classId, '--json');
    assert.equal(approved.code, 0, approved.stderr);
    const approval = JSON.parse(approved.stdout);
    assert.equal(approval.requests.length, SIZE);
    assert.ok(
      approval.requests.every((r: { refused?: string }) => r.refused === undefined),
      approved.stdout,
    );
    // Each member answers as the approval left it, by name: Approved, its first build queued.
    assert.deepEqual(
      approval.requests.map((r: { name: string; status: string; build?: unknown }) => [r.name, r.status, r.build]),
      ['lab-01', 'lab-02', 'lab-03', 'lab-04'].map((name) => [name, 'Approved', { attempt: 1, state: 'queued' }]),
    );

    await waitFor(
      'the whole class to be fulfilled',
      async () => {
        const now = await api('GET', `/api/classes/${classId}`, 'admin');
        const statuses = now.body.requests.map((r: { status: string }) => r.status);
        assert.ok(!statuses.includes('Failed'), JSON.stringify(now.body));
        return statuses.every((s: string) => s === 'Fulfilled') || undefined;
      },
      180_000,
    );
    const vms = stack.world!.pve.dump().vms.filter((v) => !v.template);
    assert.equal(vms.length, SIZE, 'one VM per member');
    assert.deepEqual(vms.map((v) => v.name?.replace(/-vm-[0-9a-z]{5}$/, '')).sort(), ['lab-01', 'lab-02', 'lab-03', 'lab-04']);

    const completed = await api('POST', `/api/classes/${classId}/complete`, 'requester', {});
    assert.equal(completed.status, 200, JSON.stringify(completed.body));
    assert.ok(
      completed.body.requests.every((r: { status: string }) => r.status === 'Completing'),
      JSON.stringify(completed.body),
    );
    await waitFor(
      'the whole class to be completed',
      async () => {
        const now = await api('GET', `/api/classes/${classId}`, 'admin');
        return now.body.requests.every((r: { status: string; open: boolean }) => r.status === 'Completed' && !r.open) || undefined;
      },
      180_000,
    );
    assert.equal(stack.world!.pve.dump().vms.filter((v) => !v.template).length, 0, 'no VM left');
  });
});
