import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { generateApiKey } from '../src/api/auth/apiKeys';
import { readServerSentEvents } from '../src/cli/sseReader';
import type { EmbeddedStack } from '../src/embedded/stack';
import { pveflow, type Run } from './support/cliRunner';
import { freePort } from './support/ports';
import { waitFor } from './support/waitFor';
import { startTestStack, type TestStack } from './support/testStack';

/**
 * The `pveflow` command line, run as a user runs it (the bin shim, in a child process, the key in the environment)
 * against the embedded stack: a consultant files a request, an admin approves it, the consultant follows the live
 * build to its end, reads the IP and completes it; a requester of another org never sees it; and the exit codes a
 * script relies on.
 */

const explain = (r: Run) => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
/** The output of a run that must have succeeded. */
const r0 = (r: Run) => {
  assert.equal(r.code, 0, explain(r));
  return r.stdout;
};

describe('the SSE reader', () => {
  const stream = 'retry: 2000\n\n: heartbeat\n\nid: 1.1.0\nevent: log\ndata: {"message":"clone 40 %"}\n\nid: 1.1.1\r\nevent: end\r\ndata: {"status":"Fulfilled","build_state":"completed"}\r\n\r\n';
  const expected = [
    { event: 'log', data: '{"message":"clone 40 %"}', id: '1.1.0' },
    { event: 'end', data: '{"status":"Fulfilled","build_state":"completed"}', id: '1.1.1' },
  ];

  async function read(chunks: Buffer[]) {
    const retries: number[] = [];
    const events = [];
    async function* body() {
      yield* chunks;
    }
    for await (const e of readServerSentEvents(body(), (ms) => retries.push(ms))) events.push(e);
    return { events, retries };
  }

  test('events come out whole whichever byte the network splits them at, CRLF and multi-byte characters included', async () => {
    const bytes = Buffer.from(stream.replace('40 %', '40 % – ü'), 'utf8');
    const want = expected.map((e) => (e.event === 'log' ? { ...e, data: e.data.replace('40 %', '40 % – ü') } : e));
    for (let cut = 1; cut < bytes.length; cut++) {
      const { events, retries } = await read([bytes.subarray(0, cut), bytes.subarray(cut)]);
      assert.deepEqual(events, want, `split at byte ${cut}`);
      assert.deepEqual(retries, [2000]);
    }
    const { events } = await read([...bytes].map((b) => Buffer.from([b])));
    assert.deepEqual(events, want, 'one byte at a time');
  });

  test('an event cut off by the end of the stream is dropped, not half-delivered', async () => {
    const { events } = await read([Buffer.from('event: log\ndata: {"message":"a"}\n\nevent: end\ndata: {"st')]);
    assert.deepEqual(events, [{ event: 'log', data: '{"message":"a"}' }]);
  });
});

describe('logs -f over a connection that drops', () => {
  test('resumes from the last event it saw (Last-Event-ID), printing every line once, and a failed build exits 1', async () => {
    const seen: Array<string | undefined> = [];
    const server = createServer((req, res) => {
      seen.push(req.headers['last-event-id'] as string | undefined);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const send = (id: string, event: string, data: unknown) => res.write(`id: ${id}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      if (req.headers['last-event-id'] === undefined) {
        res.write('retry: 10\n\n');
        send('1.1.0', 'log', { attempt: 1, at: '2026-12-01T09:00:01Z', stage: 'cloning', message: 'cloning template' });
        // Mid-event, then gone: the half event must not be printed.
        res.write('id: 1.2.0\nevent: log\ndata: {"attempt":1,');
        setTimeout(() => res.socket?.destroy(), 50);
        return;
      }
      send('1.2.0', 'log', { attempt: 1, at: '2026-12-01T09:00:02Z', stage: 'cloning', message: 'Proxmox refused the clone' });
      send('1.2.0', 'end', { status: 'Failed', build_state: 'failed' });
      res.end();
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    try {
      const { port } = server.address() as AddressInfo;
      const r = await pveflow(['logs', '-f', 'VM-AAAAA'], { PVEFLOW_API_URL: `http://127.0.0.1:${port}`, PVEFLOW_API_KEY: 'pvf_test' });
      assert.equal(r.code, 1, explain(r));
      assert.deepEqual(seen, [undefined, '1.1.0']);
      assert.deepEqual(r.stdout.trimEnd().split('\n'), ['09:00:01  cloning            cloning template', '09:00:02  cloning            Proxmox refused the clone']);
      assert.match(r.stderr, /reconnecting/);
      assert.match(r.stderr, /VM-AAAAA: build failed \(request Failed\)/);

      // For scripts: each event as the API sent it, one per line, with the id to resume from.
      const scripted = await pveflow(['logs', '-f', 'VM-AAAAA', '--json'], { PVEFLOW_API_URL: `http://127.0.0.1:${port}`, PVEFLOW_API_KEY: 'pvf_test' });
      assert.equal(scripted.code, 1, explain(scripted));
      const events = scripted.stdout
        .trimEnd()
        .split('\n')
        .map((l) => JSON.parse(l));
      assert.deepEqual(
        events.map((e) => [e.event, e.id, e.data.message ?? e.data.build_state]),
        [
          ['log', '1.1.0', 'cloning template'],
          ['log', '1.2.0', 'Proxmox refused the clone'],
          ['end', '1.2.0', 'failed'],
        ],
      );
    } finally {
      server.closeAllConnections();
      await new Promise((ok) => server.close(ok));
    }
  });
});

describe('the CLI checks what it can before sending anything', () => {
  test('each bad value, duration, count or missing flag exits 2 naming the flag, and nothing reaches the API', async () => {
    const reached: string[] = [];
    const server = createServer((req, res) => {
      reached.push(`${req.method} ${req.url}`);
      res.writeHead(500, { 'content-type': 'application/json' }).end('{"error":"the CLI should not have asked"}');
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    const env = { PVEFLOW_API_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, PVEFLOW_API_KEY: 'pvf_test' };
    const request = ['--name', 'kali', '--client', 'Acme Corp', '--requester', 'rita@acme.example', '--consultant', 'alice@consultancy.example'];
    const period = ['--start', 'now', '--end', '+14d'];
    // [arguments, what stderr must name]
    const cases: Array<[string[], RegExp]> = [
      [['requests', 'new', ...request, '--start', 'now', '--end', '+1q'], /--end "\+1q" is not a date: a duration is \+<n> and one of m/],
      [['requests', 'new', ...request, '--start', 'tomorrow', '--end', '+1d'], /--start "tomorrow" is not a date/],
      [['requests', 'new', ...request, '--start', '2026-12-01 09:00', '--end', '+1d'], /--start "2026-12-01 09:00" is not a date/],
      [['requests', 'new', ...request, '--start', '2026-12-10T09:00:00Z', '--end', '2026-12-01T09:00:00Z'], /the period must end after it starts/],
      [['requests', 'new', '--name', 'kali', ...period], /missing --client, --requester, --consultant/],
      [['requests', 'new', ...request.slice(0, 6), '--consultant', 'alice', ...period], /--consultant "alice": must be an email address/],
      [['requests', 'new', ...request, ...period, '--name', 'Kali Linux'], /--name "Kali Linux": lower-case letters/],
      [['requests', 'new', ...request, ...period, '--name', 'x'.repeat(41)], /--name "x+": .*40/],
      [['requests', 'new', ...request, ...period, '--memory-mib', '256'], /--memory-mib must be 512-262144/],
      [['requests', 'new', ...request, ...period, '--cores', '0'], /--cores must be 1-64/],
      [['requests', 'new', ...request, ...period, '--cores', 'two'], /--cores must be a whole number/],
      [['requests', 'new', ...request, ...period, '--disk-gib', '0'], /--disk-gib must be 1-/],
      [['requests', 'new', ...request, ...period, '--image', 'Debian 12'], /--image "Debian 12": lower-case/],
      [['requests', 'new', ...request, ...period, '--vlan', '100'], /--vlan needs --bridge/],
      [['requests', 'new', ...request, ...period, '--bridge', 'vmbr1', '--vlan', '5000'], /--vlan must be 1-4094/],
      [['requests', 'new', ...request, ...period, '--package', 'nginx; rm'], /--package "nginx; rm": a package name/],
      [['requests', 'new', ...request, ...period, '--write-file', '/etc/motd'], /--write-file \/etc\/motd: give GUEST_PATH=LOCAL_FILE/],
      [['requests', 'new', ...request, ...period, '--cloud-config', '/nonexistent.yaml'], /--cloud-config: cannot read/],
      [['requests', 'new', ...request, ...period, '--client', '"Acme"'], /--client/],
      [['requests', 'reject', 'VM-AAAAA'], /reject needs --reason/],
      [['requests', 'reject', 'VM-AAAAA', '--reason', ''], /--reason "": say why/],
      [['requests', 'approve', 'VM-AAAAA', '--note', 'n'.repeat(2001)], /--note "n+": at most 2000/],
      [['requests', 'extend', 'VM-AAAAA'], /extend needs --new-end/],
      [['requests', 'extend', 'VM-AAAAA', '--new-end', '+2x'], /--new-end "\+2x" is not a date/],
      [['requests', 'extend', 'VM-AAAAA', '--new-end', '2020-01-01T00:00:00Z'], /--new-end 2020-01-01T00:00:00Z is in the past/],
      [['requests', 'list', '--status', 'Running'], /--status "Running": must be one of Pending, /],
      [['requests', 'list', '--page-size', '0'], /--page-size must be 1-100/],
      [['requests', 'list', '--page-size', 'lots'], /--page-size must be a whole number/],
      [['requests', 'list', '--from', 'last week'], /--from "last week" is not a date/],
      [['requests', 'list', '--from', '2026-12-10T00:00:00Z', '--to', '2026-12-01T00:00:00Z'], /--to 2026-12-01T00:00:00Z is before --from/],
      [['requests', 'list', '--consultant', 'bob'], /--consultant "bob": must be an email address/],
      [['requests', 'list', '--page-token', 'not a token'], /--page-token "not a token"/],
      [['classes', 'new', ...request, ...period], /--count N: how many identical VMs \(2-50\)/],
      [['classes', 'new', ...request, ...period, '--count', '1'], /--count must be 2-50/],
      [['classes', 'new', ...request, ...period, '--count', '51'], /--count must be 2-50/],
      [['classes', 'new', ...request, ...period, '--count', '3', '--name', 'x'.repeat(38)], /--name "x+": at most 37 characters/],
      [['classes', 'new', ...request, ...period, '--count', '3', '--idempotency-key', 'short'], /--idempotency-key "short"/],
      [['classes', 'reject', 'CL-AAAAA'], /reject needs --reason/],
      [['requests', 'list', '--timeout', '0'], /--timeout must be a number of seconds above 0/],
    ];
    try {
      for (const [args, named] of cases) {
        const r = await pveflow(args, env);
        assert.equal(r.code, 2, `${args.join(' ')}: ${explain(r)}`);
        assert.match(r.stderr, named, `${args.join(' ')}: ${explain(r)}`);
        assert.equal(r.stdout, '');
        assert.deepEqual(reached, [], `${args.join(' ')} sent something`);
      }
      // The same values, made good, are sent: the checks refuse only what is wrong.
      const good = await pveflow(['requests', 'list', '--status', 'Fulfilled', '--page-size', '5', '--from', 'now', '--to', '+1w'], env);
      assert.equal(good.code, 5, explain(good));
      assert.equal(reached.length, 1);
      const sent = new URL(reached[0]!.replace(/^GET /, ''), 'http://x');
      assert.equal(sent.pathname, '/api/device_requests');
      assert.deepEqual([...sent.searchParams.keys()].sort(), ['from', 'page_size', 'status', 'to']);
      assert.equal(sent.searchParams.get('page_size'), '5');
    } finally {
      server.closeAllConnections();
      await new Promise((ok) => server.close(ok));
    }
  });
});

describe('the pveflow command line against the embedded stack', () => {
  let stack: EmbeddedStack;
  let running: TestStack | undefined;

  const keys = {
    // A requester of Acme who is also a consultant on the request: files it, watches it, takes the logins.
    alice: { id: 'alice', role: 'requester', org: 'Acme Corp', email: 'alice@consultancy.example', key: generateApiKey() },
    ada: { id: 'ada', role: 'admin', org: 'Acme Corp', email: 'ada@acme.example', key: generateApiKey() },
    gina: { id: 'gina', role: 'requester', org: 'Globex', email: 'gina@globex.example', key: generateApiKey() },
  };
  const as = (who: keyof typeof keys) => ({ PVEFLOW_API_URL: stack.apiUrl, PVEFLOW_API_KEY: keys[who].key });

  before(async () => {
    running = await startTestStack('cli', Object.values(keys), { API_LOG_POLL_MS: '200' });
    stack = running.stack;
  });

  after(async () => {
    await running?.stop();
  });

  test('a consultant files a request, an admin approves it, the consultant follows the build to its IP and completes it', async () => {
    const filed = await pveflow(
      [
        'requests',
        'new',
        '--json',
        '--name',
        'kali',
        '--client',
        'Acme Corp',
        '--requester',
        'alice@consultancy.example',
        '--consultant',
        'alice@consultancy.example',
        '--consultant',
        'bob@consultancy.example',
        '--start',
        'now',
        '--end',
        '+7d',
        '--cores',
        '2',
        '--memory-mib',
        '2048',
      ],
      as('alice'),
    );
    assert.equal(filed.code, 0, explain(filed));
    const { serial, status } = JSON.parse(filed.stdout);
    assert.match(serial, /^VM-[0-9A-Z]{5}$/);
    assert.equal(status, 'Pending');

    const notAdmin = await pveflow(['requests', 'approve', serial], as('alice'));
    assert.equal(notAdmin.code, 3, explain(notAdmin));
    assert.match(notAdmin.stderr, /approve needs the role admin or operator/);

    // Follow from before the approval, so that what it prints can only have come from the live build.
    let following!: () => void;
    const connected = new Promise<void>((ok) => (following = ok));
    const follow = pveflow(['logs', '-f', serial], as('alice'), { onStdout: (out) => out.includes('--- Pending') && following() });
    await connected;

    const approved = await pveflow(['requests', 'approve', serial, '--note', 'go ahead'], as('ada'));
    assert.equal(approved.code, 0, explain(approved));
    assert.equal(approved.stdout, `${serial}  Approved · build #1 queued\n`, 'the answer says what the approval did');

    const followed = await follow;
    assert.equal(followed.code, 0, explain(followed));
    const lines = followed.stdout.trimEnd().split('\n');
    // What the request held when the stream opened (its submission), then its status: the stream began before the approval.
    assert.match(lines[0]!, /^\d\d:\d\d:\d\d  \* +submitted by alice@consultancy\.example \(by alice@consultancy\.example\)$/);
    assert.equal(lines[1], '--- Pending', 'the stream began before the approval');
    for (const stage of ['cloning', 'uploading-snippet', 'starting', 'waiting-for-ip', 'ready']) {
      assert.ok(
        lines.some((l) => new RegExp(`^\\d\\d:\\d\\d:\\d\\d  ${stage} +\\S`).test(l)),
        `a ${stage} log line in:\n${followed.stdout}`,
      );
    }
    assert.ok(
      lines.some((l) => /^\d\d:\d\d:\d\d  \* +approved: go ahead \(by ada@acme\.example\)$/.test(l)),
      'the approval is on the timeline',
    );
    assert.ok(
      lines.some((l) => /^--- Fulfilled · build #1 completed · ready 100 %$/.test(l)),
      `built to 100 %:\n${followed.stdout}`,
    );
    assert.equal(lines.at(-1), `--- ${serial}: built (Fulfilled)`);

    // --json is the API's answer as it came.
    const shown = await pveflow(['requests', 'show', serial, '--json'], as('alice'));
    assert.equal(shown.code, 0, explain(shown));
    const record = JSON.parse(shown.stdout);
    assert.equal(record.status, 'Fulfilled');
    assert.equal(record.build.progress, 100);
    assert.match(record.device.ip, /^\d+\.\d+\.\d+\.\d+$/);
    const direct = await fetch(`${stack.apiUrl}/api/device_requests/${serial}`, { headers: { authorization: `Bearer ${keys.alice.key}` } });
    assert.deepEqual(JSON.parse(shown.stdout), await direct.json());

    const table = await pveflow(['requests', 'show', serial], as('alice'));
    assert.equal(table.code, 0, explain(table));
    assert.match(table.stdout, new RegExp(`^IP: +${record.device.ip.replace(/\./g, '\\.')}$`, 'm'));
    assert.match(table.stdout, /^Build: +#1 completed, ready 100 %$/m);
    // eslint-disable-next-line no-control-regex -- ESC, the start of a terminal escape, is what must be absent
    assert.doesNotMatch(table.stdout, /\x1b\[/, 'no terminal styling when stdout is not a terminal');

    const logins = await pveflow(['credentials', serial], as('alice'));
    assert.equal(logins.code, 0, explain(logins));
    assert.match(logins.stdout, /^Username: +arrow$/m);
    const stamp = '\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d UTC';
    assert.match(logins.stderr, new RegExp(`^Handed to alice@consultancy\\.example at ${stamp}; ${serial} holds them for you until ${stamp}, then shreds them`, 'm'));
    // An answer lost in transit: the same consultant fetches the same logins again within the window.
    const twice = await pveflow(['credentials', serial], as('alice'));
    assert.equal(twice.code, 0, `fetched again within the window: ${explain(twice)}`);
    assert.equal(twice.stdout, logins.stdout, 'the same logins');

    // The list comes from visibility, which catches up on its own time.
    const listed = await waitFor("the request in alice's list", async () => {
      const r = await pveflow(['requests', 'list'], as('alice'));
      assert.equal(r.code, 0, explain(r));
      return r.stdout.split('\n').find((l) => new RegExp(`^${serial} +kali +Fulfilled +completed `).test(l));
    });
    assert.match(listed, /Acme Corp/);
    assert.match(r0(await pveflow(['requests', 'list'], as('alice'))), /^SERIAL +NAME +STATUS +BUILD +ORG/m);

    // Another org: the request does not exist for it, and its list stays its own.
    const outsider = await pveflow(['requests', 'show', serial], as('gina'));
    assert.equal(outsider.code, 4, explain(outsider));
    assert.match(outsider.stderr, new RegExp(`no request ${serial}`));
    const outsiderList = await pveflow(['requests', 'list', '--json'], as('gina'));
    assert.equal(outsiderList.code, 0, explain(outsiderList));
    assert.ok(!JSON.parse(outsiderList.stdout).items.some((i: { serial: string }) => i.serial === serial));
    const peeking = await pveflow(['requests', 'list', '--org', 'Acme Corp'], as('gina'));
    assert.equal(peeking.code, 3, explain(peeking));
    const outsiderLogs = await pveflow(['logs', '-f', serial], as('gina'));
    assert.equal(outsiderLogs.code, 4, explain(outsiderLogs));

    const completed = await pveflow(['requests', 'complete', serial], as('alice'));
    assert.equal(completed.code, 0, explain(completed));
    // The workflow takes the completion and cleans up after answering.
    assert.equal(completed.stdout, `${serial}  Completing · build #1 completed\n`);
    await waitFor('the request to be completed', async () => {
      const r = await pveflow(['requests', 'show', serial, '--json'], as('alice'));
      return JSON.parse(r.stdout).status === 'Completed' ? true : undefined;
    });
    const again = await pveflow(['requests', 'approve', serial], as('ada'));
    assert.equal(again.code, 1, `the workflow refuses (409): ${explain(again)}`);
    assert.match(again.stderr, /refused \(409\)/);

    // Without -f: what is recorded, then done.
    const recorded = await pveflow(['logs', serial], as('alice'));
    assert.equal(recorded.code, 0, explain(recorded));
    assert.match(recorded.stdout, /  cloning  /);
  });

  test('pveflow images lists the catalogue; requests new names an image and the first-boot choices by flags', async () => {
    // The schedule runs the first sync at once: the catalogue is there soon after start.
    const listed = await waitFor(
      'the catalogue',
      async () => {
        const r = await pveflow(['images'], as('alice'));
        return r.code === 0 ? r : undefined;
      },
      60_000,
      500,
    );
    assert.match(listed.stdout, /^IMAGE +OS +TEMPLATE +MIN CORES +MIN MEMORY MiB +MIN DISK GiB$/m);
    assert.match(listed.stdout, /^debian-12-cloudinit \(default\) +- +9000 +1 +512 +4$/m);
    const images = JSON.parse(r0(await pveflow(['images', '--json'], as('alice')))).images;
    assert.deepEqual(
      images.map((i: { name: string }) => i.name),
      ['debian-12-cloudinit'],
    );

    const dir = mkdtempSync(join(tmpdir(), 'pveflow-cli-choices-'));
    try {
      writeFileSync(join(dir, 'cloud.yaml'), '#cloud-config\ntimezone: Europe/Paris\n');
      writeFileSync(join(dir, 'motd'), 'welcome\n');
      const request = ['requests', 'new', '--json', '--name', 'web', '--client', 'Acme Corp', '--requester', 'alice@consultancy.example', '--consultant', 'alice@consultancy.example', '--start', '+30d', '--end', '+31d'];
      const choices = [
        '--disk-gib',
        '8',
        '--bridge',
        'vmbr0',
        '--package',
        'htop',
        '--package',
        'nginx',
        '--runcmd',
        'echo hi',
        '--write-file',
        `/etc/motd=${join(dir, 'motd')}`,
        '--cloud-config',
        join(dir, 'cloud.yaml'),
      ];
      const { serial } = JSON.parse(r0(await pveflow([...request, '--image', 'debian-12-cloudinit', ...choices], as('alice'))));
      const shown = JSON.parse(r0(await pveflow(['requests', 'show', serial, '--json'], as('alice'))));
      assert.equal(shown.request.image, 'debian-12-cloudinit');
      assert.equal(shown.request.templateVmid, 9000);
      assert.equal(shown.request.diskGiB, 8);
      assert.deepEqual(shown.request.network, { bridge: 'vmbr0' });
      assert.deepEqual(shown.request.cloudInit, { packages: ['htop', 'nginx'], runcmd: ['echo hi'], write_files: [{ path: '/etc/motd', content: 'welcome\n' }], cloud_config: { timezone: 'Europe/Paris' } });
      const text = r0(await pveflow(['requests', 'show', serial], as('alice')));
      assert.match(text, /^Image: +debian-12-cloudinit$/m);
      assert.match(text, /^Size: +2 cores, 2048 MiB, 8 GiB disk$/m);
      assert.match(text, /^Network: +vmbr0$/m);
      assert.match(text, /^First boot: +packages \(2\), runcmd \(1\), write_files \(1\), cloud_config \(1\)$/m);

      const unknown = await pveflow([...request, '--image', 'nope'], as('alice'));
      assert.equal(unknown.code, 1, explain(unknown));
      assert.match(unknown.stderr, /^ {2}image: no image nope; images: debian-12-cloudinit/m);
      const offList = await pveflow([...request, '--bridge', 'vmbr7'], as('alice'));
      assert.equal(offList.code, 1, explain(offList));
      assert.match(offList.stderr, /^ {2}network\.bridge: bridge vmbr7 is not allowed/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('invalid input names each field and its reason, and exits 1', async () => {
    const body = { name: 'Kali Linux!', client: 'Acme Corp', requester: 'alice@consultancy.example', consultants: ['alice'], period: { start: '2026-12-01T09:00:00Z', end: '2026-12-15T18:00:00Z' } };
    const r = await pveflow(['requests', 'new', '--file', '-'], as('alice'), { stdin: JSON.stringify(body) });
    assert.equal(r.code, 1, explain(r));
    assert.match(r.stderr, /^pveflow: invalid request \(400\)$/m);
    assert.match(r.stderr, /^ {2}name: \S.*$/m);
    assert.match(r.stderr, /^ {2}consultants\.0: \S.*$/m);
    assert.equal(r.stdout, '');

    const scripted = await pveflow(['requests', 'new', '--file', '-', '--json', '--name', 'kali'], as('alice'), { stdin: JSON.stringify(body) });
    assert.equal(scripted.code, 1, explain(scripted));
    assert.deepEqual(
      JSON.parse(scripted.stdout).issues.map((i: { field: string }) => i.field),
      ['consultants.0'],
      'the flag overrode the file',
    );
  });

  test('exit codes: 2 for usage, 3 for a wrong key, 5 for an API that is not there', async () => {
    for (const args of [
      ['requests', 'frobnicate'],
      ['requests', 'list', '--bogus'],
      ['requests', 'show'],
      ['requests', 'show', 'not-a-serial'],
      ['logs', 'VM-AAAAA', '--reason', 'x'],
      ['requests', 'new', '--cores', 'two'],
    ]) {
      const r = await pveflow(args, as('alice'));
      assert.equal(r.code, 2, `${args.join(' ')}: ${explain(r)}`);
      assert.match(r.stderr, /^pveflow: /);
    }
    const help = await pveflow(['--help'], {});
    assert.equal(help.code, 0);
    assert.match(help.stdout, /Exit codes:/);

    const wrongKey = await pveflow(['requests', 'list'], { PVEFLOW_API_URL: stack.apiUrl, PVEFLOW_API_KEY: generateApiKey() });
    assert.equal(wrongKey.code, 3, explain(wrongKey));
    assert.match(wrongKey.stderr, /unauthenticated \(401\)/);
    const noKey = await pveflow(['requests', 'list'], { PVEFLOW_API_URL: stack.apiUrl });
    assert.equal(noKey.code, 3, explain(noKey));
    assert.match(noKey.stderr, /PVEFLOW_API_KEY/);
    // A flag wins over the environment.
    const flagKey = await pveflow(['requests', 'list', '--api-key', keys.alice.key], { PVEFLOW_API_URL: stack.apiUrl, PVEFLOW_API_KEY: 'pvf_wrong' });
    assert.equal(flagKey.code, 0, explain(flagKey));

    const unreachable = await pveflow(['requests', 'list'], { PVEFLOW_API_URL: `http://127.0.0.1:${await freePort()}`, PVEFLOW_API_KEY: keys.alice.key });
    assert.equal(unreachable.code, 5, explain(unreachable));
    assert.match(unreachable.stderr, /cannot reach the pveflow API at http:\/\/127\.0\.0\.1:\d+: connection refused/);

    const unknown = await pveflow(['requests', 'show', 'VM-ZZZZZ'], as('alice'));
    assert.equal(unknown.code, 4, explain(unknown));
  });
});
