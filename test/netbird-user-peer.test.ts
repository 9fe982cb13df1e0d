import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { netbirdUnavailable, startNetbirdServer, type NetbirdServer } from './support/netbirdServer';
import { createNetbirdUser, listPeers, loginPeerAsUser, type UserPeer } from './support/netbirdUserPeer';

/**
 * A consultant's machine signed in as a NetBird user through the server's own identity provider (Dex), against
 * NetBird's real server v0.77.1 (test/support/netbirdServer.ts): the peer is the user's, carries the user's
 * auto-groups, and `stop` leaves nothing.
 */
const unavailable = netbirdUnavailable();
if (unavailable && process.env.CI) throw new Error(`${unavailable}: CI must provide it`);
/** What the namespaces' names start with: PVEFLOW_TEST_NETNS_PREFIX when a machine shared by several checkouts asks. */
const PREFIX = process.env.PVEFLOW_TEST_NETNS_PREFIX ?? 'consultant-e2e';

describe('a NetBird user signs a machine in through Dex', { skip: unavailable }, () => {
  let server: NetbirdServer;
  const peers: UserPeer[] = [];

  before(async () => {
    server = await startNetbirdServer({ prefix: PREFIX });
  });
  after(async () => {
    for (const p of peers) await p.stop();
    await server?.stop();
  });

  async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${server.apiUrl}${path}`, {
      method,
      headers: { authorization: `Token ${server.token}`, 'content-type': 'application/json', accept: 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    assert.ok(res.ok, `${method} ${path} answered ${res.status}: ${text}`);
    return JSON.parse(text) as T;
  }

  it("registers each user's machine as that user's peer, in that user's auto-groups", async () => {
    const groupA = await api<{ id: string }>('POST', '/api/groups', { name: 'consultants-a' });
    const groupB = await api<{ id: string }>('POST', '/api/groups', { name: 'consultants-b' });
    const alice = await createNetbirdUser(server, { email: 'alice@pveflow.test', name: 'Alice', autoGroups: [groupA.id] });
    const bob = await createNetbirdUser(server, { email: 'bob@pveflow.test', name: 'Bob', autoGroups: [groupB.id] });

    const laptopA = await loginPeerAsUser({ server, namespacePrefix: PREFIX, email: alice.email, password: alice.password, hostname: 'alice-laptop' });
    peers.push(laptopA);
    const laptopB = await loginPeerAsUser({ server, namespacePrefix: PREFIX, email: bob.email, password: bob.password, hostname: 'bob-laptop' });
    peers.push(laptopB);

    const all = await listPeers(server);
    const a = all.find((p) => p.id === laptopA.peer.id);
    const b = all.find((p) => p.id === laptopB.peer.id);
    assert.equal(a?.user_id, alice.id, "alice's machine is alice's peer");
    assert.equal(b?.user_id, bob.id, "bob's machine is bob's peer");
    assert.deepEqual(a.groups.map((g) => g.name).sort(), ['All', 'consultants-a']);
    assert.deepEqual(b.groups.map((g) => g.name).sort(), ['All', 'consultants-b']);

    // The client in the namespace holds the address the server gave it: the machine is on the VPN.
    const addr = await laptopA.exec('ip', ['-4', '-o', 'addr', 'show']);
    assert.match(addr.stdout, new RegExp(`inet ${a.ip.replaceAll('.', '\\.')}/`), addr.stdout);

    // A group added to the user's auto_groups later reaches the machine already signed in (how pveflow grants a
    // consultant whose laptop joined before the request existed).
    const later = await api<{ id: string }>('POST', '/api/groups', { name: 'pveflow-consultant-alice' });
    await api('PUT', `/api/users/${alice.id}`, { role: 'user', auto_groups: [groupA.id, later.id], is_blocked: false });
    const regrouped = (await listPeers(server)).find((p) => p.id === laptopA.peer.id);
    assert.deepEqual(regrouped?.groups.map((g) => g.name).sort(), ['All', 'consultants-a', 'pveflow-consultant-alice']);

    // The machines reach each other over the tunnel (the new account's Default policy lets every peer reach every
    // peer): what the end-to-end test's SSH from the consultant's machine relies on.
    const listener = laptopB.exec('timeout', ['30', 'socat', `TCP-LISTEN:7777,bind=${b.ip}`, 'SYSTEM:echo from-bob'], { timeoutMs: 35_000 });
    let answer = '';
    for (let i = 0; i < 20 && answer !== 'from-bob'; i++) {
      await sleep(500);
      answer = (await laptopA.exec('socat', ['-T', '5', '-', `TCP:${b.ip}:7777,connect-timeout=5`], { timeoutMs: 10_000 })).stdout.trim();
    }
    assert.equal(answer, 'from-bob', `alice's machine did not reach bob's over NetBird:\n${laptopA.log().slice(-2000)}`);
    await listener;
  });

  it('refuses a wrong password, with what Dex said', async () => {
    const carol = await createNetbirdUser(server, { email: 'carol@pveflow.test', name: 'Carol', autoGroups: [] });
    const namespacesBefore = namespacesOf();
    await assert.rejects(loginPeerAsUser({ server, namespacePrefix: PREFIX, email: carol.email, password: carol.password + 'x', hostname: 'carol-laptop', timeoutMs: 30_000 }), /e-mail and password were refused/);
    assert.deepEqual(namespacesOf(), namespacesBefore, 'the failed login left no namespace behind');
  });

  it('stop ends the client and removes its namespace; the peer stays, disconnected', async () => {
    const laptop = peers.shift()!;
    await laptop.stop();
    assert.ok(!namespacesOf().includes(laptop.namespace));
    for (let i = 0; i < 40; i++) {
      const p = (await listPeers(server)).find((x) => x.id === laptop.peer.id);
      if (p && !p.connected) return;
      await sleep(250);
    }
    assert.fail(`${laptop.hostname} still shows connected 10 s after stop`);
  });
});

/** The namespaces of this test's prefix that exist now. */
function namespacesOf(): string[] {
  return spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .stdout.split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n.startsWith(`${PREFIX}-`));
}
