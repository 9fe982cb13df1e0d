import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, test } from 'node:test';
import type { BuildTask, RequestRecord } from '../src/contracts/types';
import { pveflow, type Run } from './support/cliRunner';

/**
 * `pveflow logs` and `pveflow requests show` show every build attempt the record keeps, each with its node, VM and
 * build time, and each attempt's own log lines: against an API that answers with a record of a failed attempt and
 * its rebuild.
 */
const explain = (r: Run) => `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;

const attempt = (n: number, over: Partial<BuildTask>): BuildTask => ({
  workflowId: `vm-build-VM-AAAAA-${n}`,
  attempt: n,
  state: 'completed',
  stage: 'ready',
  progress: 100,
  log: [],
  leftovers: [],
  ...over,
});
const record: RequestRecord = {
  serial: 'VM-AAAAA',
  request: {
    serial: 'VM-AAAAA',
    name: 'kali',
    org: 'Acme Corp',
    requester: 'rita@acme.example',
    consultants: ['alice@consultancy.example'],
    period: { start: '2026-12-01T09:00:00Z', end: '2026-12-15T18:00:00Z' },
    cores: 2,
    memoryMiB: 2048,
    sshKeys: [],
  } as RequestRecord['request'],
  status: 'Fulfilled',
  previousBuilds: [
    attempt(1, {
      state: 'failed',
      stage: 'starting',
      progress: 55,
      vmid: 101,
      node: 'pve2',
      error: 'start failed: QEMU exited with code 1',
      startedAt: '2026-12-01T09:00:00Z',
      endedAt: '2026-12-01T09:00:40Z',
      durationSeconds: 40,
      log: [
        { at: '2026-12-01T09:00:05Z', stage: 'cloning', message: 'VM 101 cloned on pve2' },
        { at: '2026-12-01T09:00:39Z', stage: 'starting', message: 'failed at starting' },
      ],
    }),
  ],
  build: attempt(2, {
    vmid: 102,
    node: 'pve3',
    startedAt: '2026-12-01T10:00:00Z',
    endedAt: '2026-12-01T10:01:30Z',
    durationSeconds: 90,
    log: [{ at: '2026-12-01T10:01:30Z', stage: 'ready', message: 'VM 102 ready on pve3' }],
  }),
  device: { hostname: 'kali-vm-aaaaa', vmid: 102, node: 'pve3' },
  timeline: [{ at: '2026-12-01T09:00:41Z', event: 'build 1 failed: start failed' }],
  leftovers: [],
};

describe('the CLI shows each build attempt', () => {
  test('logs prints each attempt under its own heading, and requests show lists the attempts with node, VM and build time', async () => {
    const server = createServer((req, res) => {
      if (req.url !== '/api/device_requests/VM-AAAAA') return res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(record));
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    try {
      const env = { PVEFLOW_API_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, PVEFLOW_API_KEY: 'pvf_test' };
      const logs = await pveflow(['logs', 'VM-AAAAA'], env);
      assert.equal(logs.code, 0, explain(logs));
      const lines = logs.stdout.trimEnd().split('\n');
      const at = (pattern: RegExp) => lines.findIndex((l) => pattern.test(l));
      const order = [/^=== build #1 failed · VM 101 on pve2 · took 40 s$/, /VM 101 cloned on pve2/, /build 1 failed/, /^=== build #2 completed · VM 102 on pve3 · took 90 s$/, /VM 102 ready on pve3/];
      const found = order.map(at);
      assert.ok(
        found.every((i) => i >= 0),
        explain(logs),
      );
      assert.deepEqual(
        [...found].sort((a, b) => a - b),
        found,
        `in time order: ${explain(logs)}`,
      );

      const show = await pveflow(['requests', 'show', 'VM-AAAAA'], env);
      assert.equal(show.code, 0, explain(show));
      assert.match(show.stdout, /#1\s+failed\s+pve2\s+101\s+2026-12-01 09:00\s+2026-12-01 09:00\s+40 s\s+start failed: QEMU exited/);
      assert.match(show.stdout, /#2\s+completed\s+pve3\s+102\s+2026-12-01 10:00\s+2026-12-01 10:01\s+90 s/);
    } finally {
      server.close();
    }
  });
});
