import type { GroupInput, NetbirdAccount, PeerInput, PolicyInput, SetupKeyInput, UserCreateInput, UserInput } from './account';
import { invalidArgument, notFound } from './errors';
import { accessiblePeerView, accountView, currentUserView, groupView, peerBatchView, peerView, policyView, setupKeyView, userView, type ViewContext } from './views';

/**
 * The operations the simulator serves, keyed by the spec's own path templates (so request and response schemas
 * are looked up by the same key, and call counts read like the spec). Bodies reach a handler only after they
 * passed the spec's request schema, which is why the casts to the input types below are safe.
 */

export interface RouteRequest {
  params: Record<string, string>;
  query: Record<string, string | undefined>;
  body: unknown;
  view: ViewContext;
}

export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  template: string;
  /** Whether the operation reads a JSON body (and so validates it). */
  hasBody: boolean;
  handle(req: RouteRequest): unknown;
}

const param = (req: RouteRequest, name: string) => req.params[name] ?? '';
/** Go's strconv.ParseBool; null where it fails. */
const parseBool = (v: string): boolean | null => (/^(1|t|T|TRUE|true|True)$/.test(v) ? true : /^(0|f|F|FALSE|false|False)$/.test(v) ? false : null);
const acct = (req: RouteRequest): NetbirdAccount => req.view.account;

export const routes: Route[] = [
  // users
  {
    method: 'GET',
    template: '/api/users',
    hasBody: false,
    handle: (req) => {
      const wanted = req.query.service_user === undefined || req.query.service_user === '' ? undefined : parseBool(req.query.service_user);
      if (wanted === null) throw invalidArgument('invalid service_user query parameter');
      return [...acct(req).users.values()].filter((u) => wanted === undefined || (u.isServiceUser ?? false) === wanted).map((u) => userView(req.view, u));
    },
  },
  {
    method: 'POST',
    template: '/api/users',
    hasBody: true,
    handle: (req) => {
      const { user, password } = acct(req).createUser(req.body as UserCreateInput);
      return { ...userView(req.view, user), ...(password !== undefined && { password }) };
    },
  },
  {
    method: 'GET',
    template: '/api/users/current',
    hasBody: false,
    handle: (req) => {
      const user = acct(req).users.get(req.view.currentUserId ?? '');
      if (!user) throw notFound(`user: ${req.view.currentUserId ?? ''} not found`);
      return currentUserView(req.view, user);
    },
  },
  {
    method: 'DELETE',
    template: '/api/users/{userId}',
    hasBody: false,
    handle: (req) => (acct(req).deleteUser(req.view.currentUserId, param(req, 'userId')), {}),
  },

  // the account itself, and its network routes (the simulated account has none: VMs reach consultants peer to peer)
  {
    method: 'GET',
    template: '/api/accounts',
    hasBody: false,
    handle: (req) => [accountView(req.view)],
  },
  {
    method: 'GET',
    template: '/api/routes',
    hasBody: false,
    handle: () => [],
  },
  {
    method: 'PUT',
    template: '/api/users/{userId}',
    hasBody: true,
    handle: (req) => userView(req.view, acct(req).updateUser(param(req, 'userId'), req.body as UserInput)),
  },

  // peers
  {
    method: 'GET',
    template: '/api/peers',
    hasBody: false,
    handle: (req) =>
      acct(req)
        .listPeers({ name: req.query.name, ip: req.query.ip })
        .map((p) => peerBatchView(req.view, p)),
  },
  {
    method: 'GET',
    template: '/api/peers/{peerId}/accessible-peers',
    hasBody: false,
    handle: (req) =>
      acct(req)
        .networkMapPeers(param(req, 'peerId'))
        .map((id) => accessiblePeerView(req.view, acct(req).peer(id))),
  },
  {
    method: 'GET',
    template: '/api/peers/{peerId}',
    hasBody: false,
    handle: (req) => peerView(req.view, acct(req).peer(param(req, 'peerId'))),
  },
  {
    method: 'PUT',
    template: '/api/peers/{peerId}',
    hasBody: true,
    handle: (req) => peerView(req.view, acct(req).updatePeer(param(req, 'peerId'), req.body as PeerInput)),
  },
  {
    method: 'DELETE',
    template: '/api/peers/{peerId}',
    hasBody: false,
    handle: (req) => (acct(req).deletePeer(param(req, 'peerId')), {}),
  },

  // groups
  {
    method: 'GET',
    template: '/api/groups',
    hasBody: false,
    handle: (req) => {
      const groups = [...acct(req).groups.values()].filter((g) => req.query.name === undefined || g.name === req.query.name);
      // v0.77.1 answers a name no group has with 404, not an empty list.
      if (req.query.name !== undefined && groups.length === 0) throw notFound(`group: ${req.query.name} not found`);
      return groups.map((g) => groupView(req.view, g));
    },
  },
  {
    method: 'POST',
    template: '/api/groups',
    hasBody: true,
    handle: (req) => groupView(req.view, acct(req).createGroup(req.body as GroupInput)),
  },
  {
    method: 'GET',
    template: '/api/groups/{groupId}',
    hasBody: false,
    handle: (req) => groupView(req.view, acct(req).group(param(req, 'groupId'))),
  },
  {
    method: 'PUT',
    template: '/api/groups/{groupId}',
    hasBody: true,
    handle: (req) => groupView(req.view, acct(req).updateGroup(param(req, 'groupId'), req.body as GroupInput)),
  },
  {
    method: 'DELETE',
    template: '/api/groups/{groupId}',
    hasBody: false,
    handle: (req) => (acct(req).deleteGroup(param(req, 'groupId')), {}),
  },

  // policies
  {
    method: 'GET',
    template: '/api/policies',
    hasBody: false,
    handle: (req) => [...acct(req).policies.values()].map((p) => policyView(req.view, p)),
  },
  {
    method: 'POST',
    template: '/api/policies',
    hasBody: true,
    handle: (req) => policyView(req.view, acct(req).createPolicy(req.body as PolicyInput)),
  },
  {
    method: 'GET',
    template: '/api/policies/{policyId}',
    hasBody: false,
    handle: (req) => policyView(req.view, acct(req).policy(param(req, 'policyId'))),
  },
  {
    method: 'PUT',
    template: '/api/policies/{policyId}',
    hasBody: true,
    handle: (req) => policyView(req.view, acct(req).updatePolicy(param(req, 'policyId'), req.body as PolicyInput)),
  },
  {
    method: 'DELETE',
    template: '/api/policies/{policyId}',
    hasBody: false,
    handle: (req) => (acct(req).deletePolicy(param(req, 'policyId')), {}),
  },

  // setup keys
  {
    method: 'GET',
    template: '/api/setup-keys',
    hasBody: false,
    handle: (req) => [...acct(req).setupKeys.values()].map((k) => setupKeyView(req.view, k)),
  },
  {
    method: 'POST',
    template: '/api/setup-keys',
    hasBody: true,
    handle: (req) => {
      const key = acct(req).createSetupKey(req.body as SetupKeyInput);
      // The one and only time the key is shown in clear, as NetBird does.
      return { ...setupKeyView(req.view, key), key: key.secret };
    },
  },
  {
    method: 'GET',
    template: '/api/setup-keys/{keyId}',
    hasBody: false,
    handle: (req) => setupKeyView(req.view, acct(req).setupKey(param(req, 'keyId'))),
  },
  {
    method: 'PUT',
    template: '/api/setup-keys/{keyId}',
    hasBody: true,
    handle: (req) => setupKeyView(req.view, acct(req).updateSetupKey(param(req, 'keyId'), req.body as { revoked: boolean; auto_groups: string[] })),
  },
  {
    method: 'DELETE',
    template: '/api/setup-keys/{keyId}',
    hasBody: false,
    handle: (req) => (acct(req).deleteSetupKey(param(req, 'keyId')), {}),
  },
];
