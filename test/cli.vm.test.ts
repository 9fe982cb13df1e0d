import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { pveflow, type Run } from './support/cliRunner';

/**
 * `pveflow vm ...`, the day-2 operations from a shell: every value is checked before anything is sent (exit 2,
 * naming the flag), and what is sent is the API's wire (path, body, Idempotency-Key); the answer is printed as one
 * line, or as the API's JSON. The API itself is test/vmOperations.api.test.ts's; here a stand-in answers as it does.
 */
interface Seen {
  method: string;
  url: string;
  body: unknown;
  idempotencyKey?: string;
}

const explain = (r: Run) => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
const answer = (what: string, outcome: string, extra = {}) => ({
  serial: 'VM-AAAAA',
  status: 'Fulfilled',
  node: 'pve2',
  power: 'stopped',
  snapshots: [],
  operation: { id: 'k-1', what, state: 'succeeded', outcome, by: 'rita@acme.example', role: 'requester', started_at: '2026-12-03T10:00:00.000Z', ended_at: '2026-12-03T10:00:02.000Z' },
  ...extra,
});

describe('pveflow vm', () => {
  let server: Server;
  let env: Record<string, string>;
  const seen: Seen[] = [];
  let reply: (s: Seen) => { status: number; body: unknown } = () => ({ status: 500, body: { error: 'unexpected' } });

  before(async () => {
    server = createServer((req: IncomingMessage, res) => {
      let text = '';
      req.on('data', (chunk: Buffer) => (text += chunk.toString()));
      req.on('end', () => {
        const s: Seen = { method: req.method!, url: req.url!, body: text ? JSON.parse(text) : undefined, ...(req.headers['idempotency-key'] ? { idempotencyKey: String(req.headers['idempotency-key']) } : {}) };
        seen.push(s);
        const r = reply(s);
        res.writeHead(r.status, { 'content-type': 'application/json' }).end(JSON.stringify(r.body));
      });
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    env = { PVEFLOW_API_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, PVEFLOW_API_KEY: 'pvf_test' };
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((ok) => server.close(ok));
  });

  test('each bad value or missing part exits 2 naming it, and nothing reaches the API', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['vm', 'power', 'VM-AAAAA', 'hibernate'], /--action "hibernate"/],
      [['vm', 'power', 'VM-AAAAA'], /expected: pveflow vm power <serial> start\|shutdown\|reboot\|stop/],
      [['vm', 'power', 'kali', 'stop'], /"kali" is not a request serial/],
      [['vm', 'power', 'VM-AAAAA', 'stop', '--idempotency-key', 'short'], /--idempotency-key "short"/],
      [['vm', 'resize', 'VM-AAAAA'], /vm resize needs --cores, --memory-mib or --disk-gib/],
      [['vm', 'resize', 'VM-AAAAA', '--cores', '0'], /--cores 0: .*CPU cores/],
      [['vm', 'resize', 'VM-AAAAA', '--memory-mib', '128'], /--memory-mib 128: .*MiB of memory/],
      [['vm', 'resize', 'VM-AAAAA', '--disk-gib', 'big'], /--disk-gib must be a whole number/],
      [['vm', 'snapshot', 'VM-AAAAA'], /vm snapshot needs one of: list, create <name>, revert <name>, delete <name>/],
      [['vm', 'snapshot', 'VM-AAAAA', 'create'], /expected: pveflow vm snapshot <serial> create <name>/],
      [['vm', 'snapshot', 'VM-AAAAA', 'create', '1st'], /--name "1st": must start with a letter/],
      [['vm', 'snapshot', 'VM-AAAAA', 'create', 'current'], /--name "current": current and pending are Proxmox’s own names/],
      [['vm', 'snapshot', 'VM-AAAAA', 'revert', 'clean', '--with-ram'], /--with-ram and --description are for create, not revert/],
      [['vm', 'migrate', 'VM-AAAAA'], /vm migrate needs --target NODE/],
      [['vm', 'migrate', 'VM-AAAAA', '--target', 'pve 2'], /--target "pve 2": must be a node name/],
      [['vm', 'power', 'VM-AAAAA', 'stop', '--cores', '2'], /pveflow vm power does not take --cores/],
    ];
    for (const [args, named] of cases) {
      const r = await pveflow(args, env);
      assert.equal(r.code, 2, `${args.join(' ')}: ${explain(r)}`);
      assert.match(r.stderr, named, `${args.join(' ')}: ${explain(r)}`);
    }
    assert.deepEqual(seen, [], 'nothing was sent');
  });

  test('sends the API’s wire and prints what the operation did; refusals keep their exit codes', async () => {
    seen.length = 0;
    reply = (s) => {
      if (s.url.endsWith('/migrate')) return { status: 403, body: { error: 'forbidden', detail: 'migrate needs the role operator; key rita is a requester' } };
      if (s.url.endsWith('/reconfigure')) return { status: 409, body: { error: 'refused', detail: 'a reboot is needed to apply cores 2 → 4' } };
      if (s.method === 'GET') return { status: 200, body: { serial: 'VM-AAAAA', limit: 3, snapshots: [{ name: 'clean', taken_at: '2026-12-03T10:00:00.000Z', by: 'rita@acme.example', with_ram: true }] } };
      if (s.method === 'DELETE') return { status: 200, body: answer('snapshot delete clean', 'deleted') };
      return { status: 200, body: answer('power shutdown', 'the guest shut down') };
    };
    const shutdown = await pveflow(['vm', 'power', 'vm-aaaaa', 'shutdown', '--note', 'weekend', '--idempotency-key', 'weekend-shutdown-1'], env);
    assert.equal(shutdown.code, 0, explain(shutdown));
    assert.equal(shutdown.stdout, 'VM-AAAAA  power shutdown: the guest shut down · stopped on pve2\n');
    assert.deepEqual(seen.shift(), { method: 'POST', url: '/api/device_requests/VM-AAAAA/power', body: { action: 'shutdown', note: 'weekend' }, idempotencyKey: 'weekend-shutdown-1' });

    const resize = await pveflow(['vm', 'resize', 'VM-AAAAA', '--cores', '4', '--disk-gib', '40'], env);
    assert.equal(resize.code, 1, explain(resize));
    assert.match(resize.stderr, /refused \(409\): a reboot is needed to apply cores 2 → 4/);
    assert.deepEqual(seen.shift()?.body, { cores: 4, disk_gib: 40 });
    await pveflow(['vm', 'resize', 'VM-AAAAA', '--memory-mib', '4096', '--confirm-reboot'], env);
    assert.deepEqual(seen.shift()?.body, { memory_mib: 4096, confirm_reboot: true });

    const list = await pveflow(['vm', 'snapshot', 'VM-AAAAA', 'list'], env);
    assert.equal(list.code, 0, explain(list));
    assert.match(list.stdout, /^NAME +TAKEN \(UTC\) +BY +RAM +DESCRIPTION\nclean +2026-12-03 10:00 +rita@acme\.example +yes/);
    assert.match(list.stderr, /1 of at most 3/);
    assert.deepEqual(seen.shift(), { method: 'GET', url: '/api/device_requests/VM-AAAAA/snapshots', body: undefined });

    await pveflow(['vm', 'snapshot', 'VM-AAAAA', 'create', 'clean', '--with-ram', '--description', 'as built'], env);
    assert.deepEqual(seen.shift(), { method: 'POST', url: '/api/device_requests/VM-AAAAA/snapshots', body: { name: 'clean', with_ram: true, description: 'as built' } });
    await pveflow(['vm', 'snapshot', 'VM-AAAAA', 'revert', 'clean'], env);
    assert.deepEqual(seen.shift(), { method: 'POST', url: '/api/device_requests/VM-AAAAA/snapshots/clean/revert', body: {} });
    const deleted = await pveflow(['vm', 'snapshot', 'VM-AAAAA', 'delete', 'clean', '--json'], env);
    assert.equal(JSON.parse(deleted.stdout).operation.outcome, 'deleted');
    assert.deepEqual(seen.shift(), { method: 'DELETE', url: '/api/device_requests/VM-AAAAA/snapshots/clean', body: {} });

    const migrate = await pveflow(['vm', 'migrate', 'VM-AAAAA', '--target', 'pve3'], env);
    assert.equal(migrate.code, 3, explain(migrate));
    assert.match(migrate.stderr, /migrate needs the role operator/);
    assert.deepEqual(seen.shift()?.body, { target: 'pve3' });
  });

  test('requests show names the VM’s state, its snapshots and the last operation', async () => {
    reply = () => ({
      status: 200,
      body: {
        serial: 'VM-AAAAA',
        status: 'Fulfilled',
        timeline: [],
        leftovers: [],
        request: {
          serial: 'VM-AAAAA',
          name: 'kali',
          org: 'Acme Corp',
          requester: 'rita@acme.example',
          consultants: ['alice@consultancy.example'],
          period: { start: '2026-12-03T10:00:00.000Z', end: '2026-12-10T10:00:00.000Z' },
          cores: 2,
          memoryMiB: 2048,
        },
        device: { hostname: 'kali-vm-aaaaa', vmid: 2001, node: 'pve2', state: 'stopped' },
        snapshots: [{ name: 'clean', takenAt: '2026-12-03T10:05:00.000Z', by: 'rita@acme.example', withRam: false }],
        operations: [
          {
            id: 'k-1',
            what: 'power shutdown',
            operation: { kind: 'power', action: 'shutdown' },
            by: 'rita@acme.example',
            role: 'requester',
            startedAt: '2026-12-03T11:00:00.000Z',
            state: 'succeeded',
            outcome: 'the guest shut down',
          },
        ],
      },
    });
    const shown = await pveflow(['requests', 'show', 'VM-AAAAA'], env);
    assert.equal(shown.code, 0, explain(shown));
    assert.match(shown.stdout, /^VM state: +stopped$/m);
    assert.match(shown.stdout, /^Snapshots: +clean$/m);
    assert.match(shown.stdout, /^Last operation: +power shutdown: succeeded \(the guest shut down\) by rita@acme\.example, 2026-12-03 11:00$/m);
  });
});
