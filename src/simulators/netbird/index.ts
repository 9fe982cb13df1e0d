import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Socket } from 'node:net';
import { listenOn } from '../../net/listenOn';
import express from 'express';
import { NetbirdAccount, type NetbirdAccountSnapshot, type PeerRecord } from './account';
import { loadNetbirdContract } from './contract';
import { NETBIRD_CONTROL_PREFIX, netbirdControlRouter, type NetbirdControlOptions } from './control';
import { NO_FAULTS, type NetbirdFaults } from './faults';
import { ClientRateLimiter } from './rateLimiter';
import { createNetbirdApp, type NetbirdExchange } from './server';
import { groupView, peerView, policyView, setupKeyView, userView, type ViewContext } from './views';
import type { GroupView, PeerView, PolicyView, SetupKeyView, UserView } from './views';

/**
 * The simulated NetBird management API: the NetBird half of the "world in a box". The Proxmox simulator calls
 * `enrollPeer` when a VM boots with a setup key in its cloud-init, so the VPN peer appears as it would for real.
 */

export { NetbirdEnrollmentError } from './errors';
export type { EnrollmentRefusal } from './errors';
export type { NetbirdFaults, NetbirdRateLimit } from './faults';
export type { NetbirdExchange } from './server';
export { loadNetbirdContract, type NetbirdContract } from './contract';
export type { NetbirdControlOptions } from './control';
export type { NetbirdAccountSnapshot } from './account';

export interface NetbirdSimulatorOptions {
  /** Valid personal access tokens (sent as `Authorization: Token <PAT>`); they act as the first user. */
  tokens: string[];
  /** The first user without a role is the owner, the others are `user`s. */
  users: Array<{ email: string; name: string; role?: 'owner' | 'admin' | 'user' }>;
  /** Default `100.64.0.0/10`, NetBird's CGNAT range. */
  peerNetwork?: string;
  /** Default `netbird.cloud`. */
  dnsDomain?: string;
  /**
   * The account setting `groups_propagation_enabled` (default true): changing a user's auto_groups moves the peers
   * that user already registered into or out of those groups.
   */
  groupsPropagation?: boolean;
  /** Sees every answered API request; tests use it to hold each response against the spec. */
  onExchange?: (exchange: NetbirdExchange) => void;
  /** Enables the control endpoint (`/_sim/...`, outside `/api`) with this token; without it there is none. */
  control?: NetbirdControlOptions;
  /** The account as an earlier run left it (`snapshot()`): its users replace `users`. */
  restore?: NetbirdAccountSnapshot;
  /**
   * A new account's `Default` policy, every peer to every peer both ways (default true: as NetBird makes one).
   * False is NetBird's `--disable-default-policy`; an operator deletes it instead (docs/operations.md).
   */
  defaultPolicy?: boolean;
  /** Told after anything may have changed (a write request answered, a peer enrolled): a persisted world saves then. */
  onChange?: () => void;
}

/** A peer as the booting VM's side of the world sees it. */
export interface SimPeer {
  id: string;
  name: string;
  hostname: string;
  /** The VPN address, inside `peerNetwork`. */
  ip: string;
  /** The full DNS name, e.g. `vm-00042.netbird.cloud`. */
  dnsLabel: string;
  groupIds: string[];
  /** Empty for a peer a user registered by logging in. */
  setupKeyId: string;
  /** The user who registered it by logging in; empty for a setup-key peer. */
  userId: string;
  ephemeral: boolean;
  createdAt: string;
}

/** Everything the simulator holds, as the API would show it (setup keys masked). JSON-able. */
export interface NetbirdStateDump {
  users: UserView[];
  peers: PeerView[];
  groups: GroupView[];
  policies: PolicyView[];
  setupKeys: SetupKeyView[];
}

export interface NetbirdListening {
  url: string;
  port: number;
  close(): Promise<void>;
}

export interface NetbirdSimulator {
  listen(opts: { host?: string; port?: number; tls?: { key: string; cert: string } }): Promise<NetbirdListening>;
  /**
   * A VM that boots with `setupKey` registers itself as a peer named `hostname`, in the key's auto_groups and the
   * `All` group, with a VPN IP from peerNetwork and a DNS label. Throws NetbirdEnrollmentError for an unknown,
   * revoked, expired or used-up key. Returns undefined — and registers nothing — while the `peersNeverRegister`
   * fault is on, which is what a VM whose agent never reaches management looks like.
   */
  enrollPeer(input: { setupKey: string; hostname: string }): SimPeer | undefined;
  /**
   * A user's own machine (a consultant's laptop) joins by logging in: the peer belongs to that user and starts in
   * the user's auto_groups; later auto_groups changes reach it through groups propagation. Throws for an unknown
   * email.
   */
  enrollUserPeer(input: { email: string; hostname: string }): SimPeer;
  /** Ids of the peers `peerId` may open connections to under the account's enabled accept rules. */
  reachableFrom(peerId: string): string[];
  dump(): NetbirdStateDump;
  /** The state a restart keeps, as plain JSON, setup-key secrets included. */
  snapshot(): NetbirdAccountSnapshot;
  /** Requests received per `METHOD /api/path/template`, including refused and fault-injected ones. */
  callCounts(): Record<string, number>;
  /**
   * `set` merges into the current faults (pass a key as undefined to clear it); `reset` clears all. Setting
   * `rateLimit` starts the limiter with full buckets.
   */
  faults: { set(f: Partial<NetbirdFaults>): void; reset(): void };
}

export function createNetbirdSimulator(opts: NetbirdSimulatorOptions): NetbirdSimulator {
  const account = new NetbirdAccount({
    users: opts.users,
    peerNetwork: opts.peerNetwork ?? '100.64.0.0/10',
    groupsPropagation: opts.groupsPropagation,
    restore: opts.restore,
    defaultPolicy: opts.defaultPolicy,
  });
  const changed = opts.onChange ?? (() => undefined);
  const dnsDomain = opts.dnsDomain ?? 'netbird.cloud';
  const counts = new Map<string, number>();
  let faults: NetbirdFaults = { ...NO_FAULTS };
  let rateLimiter: ClientRateLimiter | undefined;
  const users = [...account.users.values()];
  const tokenOwnerId = (users.find((u) => u.role === 'owner' || u.role === 'admin') ?? users[0])?.id;
  const view: ViewContext = { account, dnsDomain, currentUserId: tokenOwnerId };

  const api = createNetbirdApp({
    account,
    contract: loadNetbirdContract(),
    tokens: new Set(opts.tokens),
    dnsDomain,
    tokenOwnerId,
    faults: () => faults,
    rateLimiter: () => rateLimiter,
    counts,
    onExchange: opts.onExchange,
  });
  const app = express();
  app.disable('x-powered-by');
  if (opts.control) {
    app.use(
      NETBIRD_CONTROL_PREFIX,
      netbirdControlRouter(opts.control, {
        enrollPeer: (input) => simulator.enrollPeer(input),
        enrollUserPeer: (input) => simulator.enrollUserPeer(input),
        dump: () => simulator.dump(),
      }),
    );
  }
  app.use(api);

  const simulator: NetbirdSimulator = {
    async listen({ host = '127.0.0.1', port = 0, tls }) {
      const server: Server = tls ? createHttpsServer({ key: tls.key, cert: tls.cert }, app) : createHttpServer(app);
      // The `down: 'reset'` fault: the TCP connection is reset before a byte is read (before TLS, too).
      server.on('connection', (socket: Socket) => {
        if (faults.down === 'reset') socket.resetAndDestroy();
      });
      server.on('request', (req, res) => {
        if (req.method !== 'GET' && req.method !== 'HEAD') res.once('finish', changed);
      });
      const bound = await listenOn(server, host, port, { what: 'the simulated NetBird API' });
      const hostInUrl = host.includes(':') ? `[${host}]` : host;
      return {
        url: `${tls ? 'https' : 'http'}://${hostInUrl}:${bound}`,
        port: bound,
        close: () =>
          new Promise<void>((resolve, reject) => {
            server.close((err) => (err ? reject(err) : resolve()));
            server.closeAllConnections();
          }),
      };
    },

    enrollPeer({ setupKey, hostname }) {
      if (faults.peersNeverRegister) return undefined;
      const peer = simPeer(account.enroll(setupKey, hostname));
      changed();
      return peer;
    },

    enrollUserPeer({ email, hostname }) {
      const peer = simPeer(account.enrollForUser(email, hostname));
      changed();
      return peer;
    },

    snapshot: () => account.snapshot(),

    reachableFrom: (peerId) => [...account.reachableFrom(peerId)],

    dump: () => ({
      users: [...account.users.values()].map((u) => userView(view, u)),
      peers: [...account.peers.values()].map((p) => peerView(view, p)),
      groups: [...account.groups.values()].map((g) => groupView(view, g)),
      policies: [...account.policies.values()].map((p) => policyView(view, p)),
      setupKeys: [...account.setupKeys.values()].map((k) => setupKeyView(view, k)),
    }),

    callCounts: () => Object.fromEntries(counts),

    faults: {
      set(f) {
        faults = { ...faults, ...f };
        if ('rateLimit' in f) rateLimiter = f.rateLimit ? new ClientRateLimiter(f.rateLimit) : undefined;
      },
      reset() {
        faults = { ...NO_FAULTS };
        rateLimiter = undefined;
      },
    },
  };
  return simulator;

  function simPeer(peer: PeerRecord): SimPeer {
    return {
      id: peer.id,
      name: peer.name,
      hostname: peer.hostname,
      ip: peer.ip,
      dnsLabel: `${peer.dnsLabel}.${dnsDomain}`,
      groupIds: account.groupsOfPeer(peer.id).map((g) => g.id),
      setupKeyId: peer.setupKeyId,
      userId: peer.userId,
      ephemeral: peer.ephemeral,
      createdAt: peer.createdAt,
    };
  }
}
