import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { standingGroupName } from '../src/activities/netbird/standingGroups';
import { generateApiKey } from '../src/api/auth/apiKeys';
import type { EmbeddedStack } from '../src/embedded/stack';
import { historyPlaintext } from './support/historyText';
import { validRequestBody } from './support/requests';
import { apiRequestDriver } from './support/apiRequestDriver';
import { waitFor } from './support/waitFor';
import { startTestStack, type TestStack } from './support/testStack';

/**
 * The embedded default (`npm start`'s stack) on free ports, driven only through the HTTP API, with the simulated
 * world's state checked from the outside: the request from submission to completion, and bad input refused.
 */

describe('embedded stack end to end', () => {
  let stack: EmbeddedStack;
  let dataDir: string;
  let running: TestStack | undefined;
  /** Every HTTP answer the test saw: checked for secrets at the end. */
  const answers: string[] = [];
  /** Everything the in-process stack wrote to stdout and stderr (console, the SDK's logger), from start to stop. */
  const logs: string[] = [];
  const streams = [process.stdout, process.stderr] as const;
  const originalWrites = streams.map((s) => s.write);
  const METRICS_TOKEN = `metrics-${generateApiKey()}`;

  /** The keys the stack is started with (API_KEYS): clear here, hashed by the API on load. */
  const keys = {
    requester: { id: 'rita', role: 'requester', org: 'Acme Corp', email: 'rita@acme.example', key: generateApiKey() },
    admin: { id: 'ada', role: 'admin', org: 'Acme Corp', email: 'admin@acme.example', key: generateApiKey() },
    operator: { id: 'ops', role: 'operator', key: generateApiKey() },
    consultant: { id: 'alice', role: 'requester', org: 'Acme Corp', email: 'alice@consultancy.example', key: generateApiKey() },
  };

  const api = async (method: string, path: string, body?: unknown, as: keyof typeof keys = 'operator') => {
    const res = await fetch(`${stack.apiUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${keys[as].key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    answers.push(text);
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };

  const requests = apiRequestDriver((method, path, as, body) => api(method, path, body, ({ submitter: 'requester', approver: 'admin', reader: 'operator' } as const)[as]));

  before(async () => {
    streams.forEach((stream, i) => {
      const write = originalWrites[i]!;
      stream.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
        logs.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
        return (write as (...a: unknown[]) => boolean).call(stream, chunk, ...rest);
      }) as typeof stream.write;
    });
    running = await startTestStack('e2e', Object.values(keys), { METRICS_TOKEN, LOG_LEVEL: 'debug' });
    stack = running.stack;
    dataDir = running.dataDir;
  });

  after(async () => {
    await running?.stop();
    streams.forEach((stream, i) => void (stream.write = originalWrites[i]!));
  });

  test('a request goes from submission through approval to a fulfilled VM and back to nothing', async () => {
    const request = await requests.startPending(validRequestBody());
    const { serial } = request;
    assert.match(serial, /^VM-[0-9A-Z]{5}$/);

    const pending = await api('GET', `/api/device_requests/${serial}`, undefined, 'requester');
    assert.equal(pending.status, 200);
    assert.equal(pending.body.status, 'Pending');

    // Findable in Temporal UI by serial (visibility is eventually consistent).
    await waitFor('the request in visibility', async () => {
      for await (const wf of stack.client.workflow.list({ query: `Serial = "${serial}"` })) return wf.workflowId;
      return undefined;
    });

    const byRequester = await api('POST', `/api/device_requests/${serial}/approve`, {}, 'requester');
    assert.equal(byRequester.status, 403, 'only admins approve');

    const approved = await request.approve();
    assert.equal(approved.status, 200, JSON.stringify(approved.body));
    assert.equal(approved.body.status, 'Approved');

    const twice = await api('POST', `/api/device_requests/${serial}/approve`, {}, 'admin');
    assert.equal(twice.status, 409, 'a second approval is refused, not ignored');
    assert.match(twice.body.detail, /cannot approve/);

    const fulfilled = await request.waitForStatus('Fulfilled');
    const { vmid, node, ip, vpnHostname, hostname } = fulfilled.device;
    assert.ok(Number.isInteger(vmid) && node && ip && vpnHostname, JSON.stringify(fulfilled.device));
    assert.equal(fulfilled.build.progress, 100);
    assert.equal(fulfilled.build.state, 'completed');

    // Prometheus metrics: behind METRICS_TOKEN; API traffic by route template, calls to Proxmox and NetBird by
    // operation, open requests by status from visibility — and no serial, VMID or node in any label.
    const scrape = async (token?: string) => {
      const res = await fetch(`${stack.apiUrl}/metrics`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
      const text = await res.text();
      answers.push(text);
      return { status: res.status, text };
    };
    assert.equal((await scrape()).status, 401);
    assert.equal((await scrape(keys.operator.key)).status, 401, 'an API key is not the metrics token');
    const metrics = await waitFor('the request counted as Fulfilled', async () => {
      const m = await scrape(METRICS_TOKEN);
      assert.equal(m.status, 200);
      return /^pveflow_requests\{status="Fulfilled"\} 1$/m.test(m.text) ? m.text : undefined;
    });
    assert.match(metrics, /^pveflow_builds_total\{outcome="completed"\} 1$/m);
    assert.match(metrics, /^pveflow_http_requests_total\{method="POST",route="\/api\/device_requests",status="201"\} 1$/m);
    assert.match(metrics, /^pveflow_http_requests_total\{method="GET",route="\/api\/device_requests\/:serial",status="200"\} \d+$/m);
    assert.match(metrics, /^pveflow_upstream_calls_total\{system="proxmox",operation="POST \/nodes\/\{node\}\/qemu\/\{vmid\}\/clone",outcome="ok"\} 1$/m);
    assert.match(metrics, /^pveflow_upstream_calls_total\{system="netbird",operation="POST \/api\/setup-keys",outcome="ok"\} 1$/m);
    assert.match(metrics, /^pveflow_build_stage_duration_seconds_count\{stage="cloning",outcome="ok"\} 1$/m);
    for (const id of [serial, `"${node}"`, String(vmid)]) assert.ok(!metrics.includes(id), `${id} in a metric label`);

    // The simulated cluster holds exactly that VM, with the requested size, in the pool, running.
    const vm = stack.world!.pve.dump().vms.find((v) => v.vmid === vmid);
    assert.ok(vm, `VM ${vmid} exists in the simulator`);
    assert.equal(vm.node, node);
    assert.equal(vm.pool, 'pveflow');
    assert.equal(vm.status, 'running');
    assert.equal(Number(vm.config.cores), 4);
    assert.equal(Number(vm.config.memory), 4096);
    assert.match(String(vm.config.cicustom), /^user=local:snippets\/pveflow-vm-/);

    // The snippet holds the setup key; nothing else may.
    const snippetDir = stack.world!.snippetsDirOf(node);
    const snippet = readdirSync(snippetDir).find((f) => f.includes(serial.toLowerCase()));
    assert.ok(snippet, 'cloud-init snippet uploaded to the node');
    const setupKey = /--setup-key\n?\s*- ([^\s]+)/.exec(readFileSync(join(snippetDir, snippet), 'utf8'))?.[1];
    assert.ok(setupKey, 'the snippet carries a NetBird setup key');

    // The guest's logins: only their SHA-512 crypt hashes are in the snippet; one consultant gets them (again within the re-fetch window).
    const snippetText = readFileSync(join(snippetDir, snippet), 'utf8');
    const hashes = [...snippetText.matchAll(/(\$6\$[^\s'"]+)/g)].map((m) => m[1]!);
    assert.equal(hashes.length, 2, 'the user and root password hashes');
    const notConsultant = await api('GET', `/api/device_requests/${serial}/credentials`, undefined, 'requester');
    assert.equal(notConsultant.status, 409);
    assert.match(notConsultant.body.detail, /for its consultants only/);
    const creds = await api('GET', `/api/device_requests/${serial}/credentials`, undefined, 'consultant');
    assert.equal(creds.status, 200, JSON.stringify(creds.body));
    assert.equal(creds.body.username, 'arrow');
    const credentialAnswer = answers.length - 1;
    const { verify } = await import('unixcrypt');
    assert.ok(verify(creds.body.password, hashes[0]!) && verify(creds.body.root_password, hashes[1]!), 'the snippet holds hashes of exactly these passwords');
    assert.ok(!snippetText.includes(creds.body.password) && !snippetText.includes(creds.body.root_password), 'no password in clear on the node');
    // An answer lost in transit: the same consultant fetches the same logins again within the re-fetch window.
    const again = await api('GET', `/api/device_requests/${serial}/credentials`, undefined, 'consultant');
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.deepEqual([again.body.password, again.body.revealed_at], [creds.body.password, creds.body.revealed_at]);
    const refetchAnswer = answers.length - 1;
    const audited = await api('GET', `/api/device_requests/${serial}`);
    assert.ok(audited.body.timeline.some((e: { event: string; by?: string }) => e.event.startsWith('guest credentials revealed to alice@consultancy.example; ')));
    assert.deepEqual(audited.body.credentials, { available: false, revealedTo: 'alice@consultancy.example', revealedAt: creds.body.revealed_at, refetchUntil: creds.body.refetchable_until });

    // NetBird: one peer named after the VM, its device group, and a one-way policy from the consultants' standing groups.
    const nb = stack.world!.netbird.dump();
    const peers = nb.peers.filter((p) => p.name === hostname);
    assert.equal(peers.length, 1);
    const deviceGroup = nb.groups.find((g) => g.name === `device-${serial}`);
    assert.ok(deviceGroup);
    assert.ok(!nb.groups.some((g) => g.name === `consultants-${serial}`), 'no per-request consultants group');
    assert.ok(
      deviceGroup.peers.some((p) => p.id === peers[0]!.id),
      'the VM peer is in its device group',
    );
    const standing = ['alice@consultancy.example', 'bob@consultancy.example'].map((email) => {
      const group = nb.groups.find((g) => g.name === standingGroupName(email));
      assert.ok(group, `${email} has a standing group`);
      assert.ok(nb.users.find((u) => u.email === email)?.auto_groups.includes(group.id), `${email} carries ${group.name}`);
      return group.id;
    });
    const policy = nb.policies.find((p) => p.name.includes(serial));
    assert.ok(policy);
    assert.equal(policy.rules.length, 1);
    assert.equal(policy.rules[0]!.bidirectional, false, 'the VM can never reach back to the consultants');
    assert.deepEqual(policy.rules[0]!.sources?.map((s) => s.id).sort(), [...standing].sort());
    assert.deepEqual(
      policy.rules[0]!.destinations?.map((d) => d.id),
      [deviceGroup.id],
    );

    // The build log, replayed as Server-Sent Events now that the build is done, ending with the build.
    const stream = await fetch(`${stack.apiUrl}/api/device_requests/${serial}/logs`, { headers: { authorization: `Bearer ${keys.requester.key}` } });
    assert.equal(stream.status, 200);
    assert.match(stream.headers.get('content-type') ?? '', /^text\/event-stream/);
    const sse = await stream.text();
    answers.push(sse);
    assert.match(sse, /event: log\ndata: \{"attempt":1,/);
    assert.match(sse, /event: end\ndata: \{"status":"Fulfilled","build_state":"completed"\}\n\n$/);

    const completing = await api('POST', `/api/device_requests/${serial}/complete`, {}, 'requester');
    assert.equal(completing.status, 200, JSON.stringify(completing.body));
    const done = await request.waitForStatus('Completed');
    assert.deepEqual(done.leftovers, []);
    assert.ok(
      done.timeline.some((t: { by?: string }) => t.by === 'rita@acme.example'),
      "the completion is recorded as the key holder's",
    );

    // Nothing of the request is left: no VM, no snippet, no peer, no device group, no policy, no setup key.
    assert.equal(
      stack.world!.pve.dump().vms.find((v) => v.vmid === vmid),
      undefined,
    );
    assert.equal(readdirSync(snippetDir).filter((f) => f.includes(serial.toLowerCase())).length, 0);
    const after = stack.world!.netbird.dump();
    assert.equal(after.peers.filter((p) => p.name === hostname).length, 0);
    assert.equal(after.groups.filter((g) => g.name.includes(serial)).length, 0);
    assert.equal(after.policies.filter((p) => p.name.includes(serial)).length, 0);
    assert.equal(after.setupKeys.filter((k) => k.name.includes(serial)).length, 0);
    // The consultants keep their standing groups, which no policy names any more.
    assert.ok(standing.every((id) => after.groups.some((g) => g.id === id)));
    assert.ok(!after.policies.some((p) => p.rules.some((r) => r.sources?.some((g) => standing.includes(g.id)))));

    // No secret in any API answer, any log line or the request's workflow histories.
    const sshKey = readFileSync(stack.config.SSH_PRIVATE_KEY_FILE!, 'utf8');
    const sshKeyLines = sshKey.split('\n').filter((l) => /^[A-Za-z0-9+/=]{40,}$/.test(l));
    assert.ok(sshKeyLines.length > 0, 'the SSH key has a body to look for');
    const secrets: Record<string, string> = {
      ...Object.fromEntries(sshKeyLines.map((l, i) => [`sshPrivateKey line ${i + 1}`, l])),
      metricsToken: METRICS_TOKEN,
      operatorKey: keys.operator.key,
      setupKey,
      pveToken: stack.config.PVE_TOKEN_SECRET!,
      netbirdToken: stack.config.NETBIRD_TOKEN!,
      apiKey: keys.requester.key,
      guestPassword: creds.body.password as string,
      rootPassword: creds.body.root_password as string,
    };
    const otherAnswers = answers.filter((_, i) => i !== credentialAnswer && i !== refetchAnswer); // the two answers whose job is to carry them
    // Histories as read without the codec key: every payload byte decoded as text.
    const histories = await Promise.all([`vm-request-${serial}`, `vm-build-${serial}-1`, `vm-completion-${serial}`].map(async (id) => historyPlaintext(await stack.client.workflow.getHandle(id).fetchHistory())));
    // The dev server's own log too: it sees every payload and search attribute on their way in.
    const logText = [...logs, readFileSync(join(dataDir, 'temporal.log'), 'utf8')].join('');
    assert.ok(logs.length > 0, 'the stack wrote log lines (the capture works)');
    for (const [name, secret] of Object.entries(secrets)) {
      assert.ok(!otherAnswers.some((a) => a.includes(secret)), `${name} appears in an API answer`);
      assert.ok(!histories.some((h) => h.includes(secret)), `${name} appears in workflow history`);
      assert.ok(!logText.includes(secret), `${name} appears in a log line`);
    }
    // And the payloads are encrypted at all: the requester's address, in the request's input and record, is not
    // readable without the key, while the codec-aware client reads it back.
    assert.ok(!histories.some((h) => h.includes('rita@acme.example')), 'payloads are stored in clear');
    assert.equal((await stack.client.workflow.getHandle(`vm-request-${serial}`).result()).request.requester, 'rita@acme.example');
  });

  test('bad input gets 400 naming the field and starts no workflow', async () => {
    const starts: unknown[] = [];
    const workflow = stack.client.workflow;
    const start = workflow.start.bind(workflow);
    workflow.start = (async (...args: Parameters<typeof start>) => {
      starts.push(args);
      return start(...args);
    }) as typeof workflow.start;
    try {
      const cases: Array<[string, unknown, string]> = [
        ['missing consultants', validRequestBody({ consultants: undefined }), 'consultants'],
        ['consultant not an email', validRequestBody({ consultants: ['alice'] }), 'consultants.0'],
        ['name not a DNS label', validRequestBody({ name: 'Kali Linux!' }), 'name'],
        ['end before start', validRequestBody({ period: { start: '2026-12-10T00:00:00Z', end: '2026-12-01T00:00:00Z' } }), 'period.end'],
        ['cores out of range', validRequestBody({ cores: 0 }), 'cores'],
        ['unknown field', validRequestBody({ root_password: 'x' }), 'root_password'],
      ];
      for (const [what, body, field] of cases) {
        const r = await api('POST', '/api/device_requests', body);
        assert.equal(r.status, 400, `${what}: ${JSON.stringify(r.body)}`);
        const fields = r.body.issues.map((i: { field: string }) => i.field);
        assert.ok(fields.includes(field), `${what}: expected field ${field}, got ${fields.join(', ')}`);
        assert.ok(r.body.issues.every((i: { reason: string }) => i.reason.length > 0));
      }
      const notJson = await api('POST', '/api/device_requests', '{"name": ');
      assert.equal(notJson.status, 400);
      const badSerial = await api('GET', '/api/device_requests/not-a-serial');
      assert.equal(badSerial.status, 400);
      assert.equal(badSerial.body.issues[0].field, 'serial');
      const unknown = await api('GET', '/api/device_requests/VM-ZZZZZ');
      assert.equal(unknown.status, 404);
      const rejectWithoutReason = await api('POST', '/api/device_requests/VM-ZZZZZ/reject', {});
      assert.equal(rejectWithoutReason.status, 400);
      assert.equal(rejectWithoutReason.body.issues[0].field, 'reason');
      assert.equal(starts.length, 0, 'no workflow was started');
    } finally {
      workflow.start = start;
    }
  });
});
