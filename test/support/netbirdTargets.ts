/**
 * The two NetBird management servers the contract suite (test/netbird-contract.test.ts) holds to the same
 * assertions: pveflow's simulator, and NetBird's own server v0.77.1 (test/support/netbirdServer.ts). Each is a new
 * account set up as its server sets one up, with the owner's token; a machine joins it with a setup key the way
 * that target's machines do (the simulator's enrolment, or a real `netbird up` in a namespace of its own).
 */
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { NetbirdClient, type NetbirdClientOptions } from '../../src/clients/netbird';
import { createNetbirdSimulator } from '../../src/simulators/netbird';
import { netbirdUnavailable, startNetbirdServer, type NetbirdPeer, type NetbirdServer } from './netbirdServer';

/** What `reaches` connects to on the destination machine (in a namespace of its own: any port is free). */
const PROBE_PORT = 2222;
const PROBE_ANSWER = 'pveflow-probe';

export interface NetbirdTarget {
  name: string;
  apiUrl: string;
  token: string;
  /** The owner as the target's account holds it. */
  ownerEmail: string;
  client(overrides?: Partial<NetbirdClientOptions>): NetbirdClient;
  /** A machine `hostname` registers with `setupKey`; resolves once management lists the peer. */
  join(hostname: string, setupKey: string): Promise<void>;
  /**
   * Whether machine `from` can open a TCP connection to machine `to` over NetBird (both joined through `join`):
   * the simulator's model of the account's rules, or a real connection through the tunnel, tried for `withinMs`.
   */
  reaches(from: string, to: string, withinMs: number): Promise<boolean>;
  /** A second account of the same target with NetBird's API rate limiter on (per token, per minute, burst). */
  rateLimited(limit: { requestsPerMinute: number; burst: number }): Promise<{ client(overrides?: Partial<NetbirdClientOptions>): NetbirdClient; close(): Promise<void> }>;
  close(): Promise<void>;
}

export type TargetFactory = () => Promise<NetbirdTarget>;

const OWNER = 'owner@pveflow.test';

export const simulatorTarget: TargetFactory = async () => {
  const token = 'nbp_contractSimulatorToken0000000000000';
  const start = async (rateLimit?: { requestsPerMinute: number; burst: number }) => {
    const sim = createNetbirdSimulator({ tokens: [token], users: [{ email: OWNER, name: 'pveflow test owner', role: 'owner' }] });
    if (rateLimit) sim.faults.set({ rateLimit: { requestsPerSecond: rateLimit.requestsPerMinute / 60, burst: rateLimit.burst, retryAfter: false } });
    return { sim, listening: await sim.listen({}) };
  };
  const { sim, listening } = await start();
  const clients: NetbirdClient[] = [];
  const client =
    (url: string) =>
    (overrides: Partial<NetbirdClientOptions> = {}) => {
      const c = new NetbirdClient({ baseUrl: url, token, timeoutMs: 10_000, ...overrides });
      clients.push(c);
      return c;
    };
  return {
    name: 'the simulator',
    apiUrl: listening.url,
    token,
    ownerEmail: OWNER,
    client: client(listening.url),
    join: async (hostname, setupKey) => void sim.enrollPeer({ setupKey, hostname }),
    reaches: async (from, to) => {
      const id = (name: string) => sim.dump().peers.find((p) => p.name === name)?.id ?? '';
      return sim.reachableFrom(id(from)).includes(id(to));
    },
    rateLimited: async (limit) => {
      const limited = await start(limit);
      return { client: client(limited.listening.url), close: limited.listening.close };
    },
    close: async () => {
      await Promise.all(clients.map((c) => c.close()));
      await listening.close();
    },
  };
};

/** What the namespaces' names start with: PVEFLOW_TEST_NETNS_PREFIX when a machine shared by several checkouts asks. */
const PREFIX = process.env.PVEFLOW_TEST_NETNS_PREFIX ?? 'pveflow-nb';

export const realServerTarget: TargetFactory = async () => {
  const server = await startNetbirdServer({ prefix: PREFIX, owner: { email: OWNER, password: 'contract-owner-pass-1', name: 'pveflow test owner' } });
  const servers: NetbirdServer[] = [server];
  const clients: NetbirdClient[] = [];
  const client =
    (s: NetbirdServer) =>
    (overrides: Partial<NetbirdClientOptions> = {}) => {
      const c = new NetbirdClient({ baseUrl: s.apiUrl, token: s.token, timeoutMs: 10_000, ...overrides });
      clients.push(c);
      return c;
    };
  const nb = client(server)();
  const machines = new Map<string, NetbirdPeer>();
  return {
    name: "NetBird's own server v0.77.1",
    apiUrl: server.apiUrl,
    token: server.token,
    ownerEmail: OWNER,
    client: client(server),
    join: async (hostname, setupKey) => {
      const peer = await server.startPeer({ name: hostname, setupKey });
      machines.set(hostname, peer);
      const deadline = Date.now() + 30_000;
      while (!(await nb.peersNamed(hostname)).length) {
        if (Date.now() > deadline) throw new Error(`peer ${hostname} did not register within 30 s:\n${peer.log().slice(-2000)}`);
        await sleep(250);
      }
    },
    reaches: async (from, to, withinMs) => {
      const [source, destination] = [machines.get(from), machines.get(to)];
      const [peer] = await nb.peersNamed(to);
      if (!source || !destination || !peer) throw new Error(`no machine ${!source ? from : to} joined`);
      // A listener on the destination machine; the source connects to its NetBird address until it answers.
      const listener = spawn('ip', ['netns', 'exec', destination.namespace, 'socat', `TCP-LISTEN:${PROBE_PORT},reuseaddr,fork`, `SYSTEM:echo ${PROBE_ANSWER}`], { stdio: 'ignore' });
      try {
        const deadline = Date.now() + withinMs;
        do {
          const tried = source.exec('socat', ['-T2', '-', `TCP:${peer.ip}:${PROBE_PORT},connect-timeout=1`], { input: '', timeoutMs: 5_000 });
          if (tried.stdout.includes(PROBE_ANSWER)) return true;
          await sleep(250);
        } while (Date.now() < deadline);
        return false;
      } finally {
        listener.kill();
      }
    },
    rateLimited: async (limit) => {
      const limited = await startNetbirdServer({ prefix: PREFIX, rateLimit: limit });
      servers.push(limited);
      return { client: client(limited), close: () => limited.stop() };
    },
    close: async () => {
      await Promise.all(clients.map((c) => c.close()));
      for (const s of servers) await s.stop();
    },
  };
};

/** Why the real target cannot run here; undefined when it can. */
export const realServerUnavailable = netbirdUnavailable;
