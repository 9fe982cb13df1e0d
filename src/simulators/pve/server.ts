import { timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { gzip } from 'node:zlib';
import { Envelope, Params, type SimContext } from './context';
import { CONTROL_PREFIX, handleControl, type ControlOptions } from './control';
import { paramError, PveError } from './errors';
import { nodeHealth } from './nodeHealth';
import type { Identity } from './permissions';
import type { Router } from './router';
import { validateParameters, type RawParam } from './schema';
import type { TokenSeed, UserSeed } from './seed';
import { sleep } from './timing';

/**
 * The pveproxy/pvedaemon front door: TLS, `/api2/json`, token authentication, request decoding, permission check,
 * node "proxying", schema validation, and PVE's response envelope (reason phrase = first line of the message).
 */
const MAX_BODY = 512 * 1024;
const API_PREFIX = '/api2/json';

export interface Credentials {
  users: Map<string, UserSeed>;
  tokens: Map<string, TokenSeed>;
}

export interface ServerDeps {
  sim: SimContext;
  router: Router;
  credentials: Credentials;
  counts: Map<string, number>;
  /** The control endpoint; absent = disabled (its paths are then as unknown as any other non-API path). */
  control?: ControlOptions;
  dump(): unknown;
}

export function createApiServer(deps: ServerDeps, tls: { key: string; cert: string }): Server {
  return createServer({ key: tls.key, cert: tls.cert }, (req, res) => {
    handle(deps, req, res).catch((err: unknown) => {
      if (!res.headersSent) sendError(res, new PveError(500, err instanceof Error ? err.message : String(err)));
    });
  });
}

async function handle(deps: ServerDeps, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const { sim, router, credentials, counts } = deps;
  // pve-http-server: `accept_gzip` when the header merely contains "gzip" (case-sensitive, q-values ignored).
  if (/gzip/.test(req.headers['accept-encoding'] ?? '')) acceptsGzip.add(res);
  const method = req.method ?? 'GET';
  const url = new URL(req.url ?? '/', 'https://pve.invalid');
  if (deps.control && (url.pathname === CONTROL_PREFIX || url.pathname.startsWith(`${CONTROL_PREFIX}/`))) {
    const body = (await readBody(req)) ?? Buffer.alloc(0);
    return handleControl(deps.control, sim.faults, deps.dump, req, url, body, res);
  }
  if (method === 'HEAD') return sendPlain(res, 501, "method 'HEAD' not available");
  if (!url.pathname.startsWith(`${API_PREFIX}/`) && url.pathname !== API_PREFIX) {
    return sendPlain(res, 501, 'no such uri');
  }
  if (/chunked/i.test(req.headers['transfer-encoding'] ?? '')) {
    return sendPlain(res, 501, 'chunked transfer encoding not supported');
  }
  const body = await readBody(req);
  if (body === undefined) return sendPlain(res, 501, 'for data too large');
  if (body.length > 0 && (method === 'GET' || method === 'DELETE')) {
    return sendPlain(res, 501, `Unexpected content for method '${method}'`);
  }

  const identity = authenticate(credentials, req.headers.authorization);
  if (!identity.ok) {
    await sleep(sim.timing.authFailureDelayMs);
    res.statusCode = 401;
    res.statusMessage = identity.reason;
    res.setHeader('Connection', 'close');
    res.setHeader('Server', 'pve-api-daemon/3.0');
    res.end();
    return;
  }

  const apiPath = url.pathname.slice(API_PREFIX.length) || '/';
  const match = router.match(method, apiPath);
  if (!match) return sendError(res, new PveError(501, `Method '${method} ${apiPath}' not implemented`));
  const key = `${method} ${match.route.path}`;
  counts.set(key, (counts.get(key) ?? 0) + 1);
  const node = match.pathParams.node;
  const vmid = match.pathParams.vmid !== undefined ? Number(match.pathParams.vmid) : undefined;
  const scope = { route: key, node, vmid };

  const latency = sim.faults.peek('latency', scope);
  if (latency) await sleep(latency.ms);
  const injected = sim.faults.takeError(scope);
  if (injected) return sendError(res, new PveError(injected.status ?? 500, injected.message ?? 'simulated server error'));

  try {
    const raw = mergeParams(decodeBody(req.headers['content-type'], body), decodeForm(url.search.slice(1)), match.pathParams);
    const request = { identity: identity.identity, params: new Params(normalize(raw)) };
    match.route.permission?.(request, sim);
    if (match.route.path.startsWith('/nodes/{node}')) await contactNode(sim, node ?? '');
    const methodSchema = sim.schema.method(match.route.path, method);
    if (methodSchema) {
      const errors = validateParameters(methodSchema, raw);
      if (errors) throw paramError(errors);
    }
    // Everything that writes to pmxcfs needs quorum (reference §5); reads are served from the local copy.
    if (method !== 'GET' && sim.faults.peek('quorumLoss', { node })) throw new PveError(500, 'cluster not ready - no quorum?');
    const work = Promise.resolve().then(() => match.route.handle(request, sim));
    if (sim.faults.take('slowSync', scope)) {
      // The call outlives pveproxy's proxy timeout: the client gets 596, the work goes on and lands anyway.
      work.catch(() => undefined);
      await sleep(sim.timing.proxyTimeoutMs);
      throw new PveError(596, 'Connection timed out');
    }
    sendData(res, await work);
  } catch (err) {
    if (err instanceof PveError) return sendError(res, err);
    throw err;
  }
}

type AuthResult = { ok: true; identity: Identity } | { ok: false; reason: string };

/** `PVEAPIToken=USER@REALM!TOKENID=SECRET` (or a space after `PVEAPIToken`), split at the last `=`. */
function authenticate(credentials: Credentials, header: string | undefined): AuthResult {
  if (!header) return { ok: false, reason: 'No ticket' };
  const failed: AuthResult = { ok: false, reason: 'Authentication failed!' };
  const m = /^PVEAPIToken[= ](.+)$/s.exec(header.trim());
  if (!m) return failed;
  let value: string;
  try {
    value = decodeURIComponent(m[1]!);
  } catch {
    return failed;
  }
  const eq = value.lastIndexOf('=');
  if (eq < 0) return failed;
  const tokenid = value.slice(0, eq);
  const secret = value.slice(eq + 1);
  const idm = /^(\S+@\S+)!([A-Za-z][A-Za-z0-9.\-_]+)$/.exec(tokenid);
  const token = credentials.tokens.get(tokenid);
  if (!idm || !token) return failed;
  const user = credentials.users.get(idm[1]!);
  if (!user || user.enable === false) return failed;
  const a = Buffer.from(secret);
  const b = Buffer.from(token.secret);
  if (a.length !== b.length || !timingSafeEqual(a, b)) return failed;
  return { ok: true, identity: { userid: idm[1]!, tokenName: idm[2]!, privsep: token.privsep } };
}

/**
 * What pveproxy does before forwarding to `{node}`: resolve it, connect to it. A down node answers with
 * AnyEvent::HTTP's pseudo status: 595 for a failed connect, 596 after the proxy timeout.
 */
async function contactNode(sim: SimContext, node: string): Promise<void> {
  const n = sim.cluster.nodes.get(node);
  if (!n) {
    throw new PveError(500, `hostname lookup '${node}' failed - failed to get address info for: ${node}: Name or service not known`);
  }
  const health = nodeHealth(sim, node);
  if (health.online) return;
  if (health.error === 'timeout') {
    await sleep(sim.timing.proxyTimeoutMs);
    throw new PveError(596, 'Connection timed out');
  }
  throw new PveError(595, health.error === 'refused' ? 'Connection refused' : 'No route to host');
}

async function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) tooLarge = true;
    else chunks.push(chunk as Buffer);
  }
  return tooLarge ? undefined : Buffer.concat(chunks);
}

function decodeBody(contentType: string | undefined, body: Buffer): Record<string, RawParam> {
  if (body.length === 0) return {};
  const ct = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (ct === 'application/json') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      throw new PveError(400, 'malformed JSON string');
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new PveError(400, 'malformed JSON string');
    const out: Record<string, RawParam> = {};
    for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
      if (v === null || v === undefined) continue;
      out[k] = typeof v === 'number' ? String(v) : (v as RawParam);
    }
    return out;
  }
  if (ct === 'application/x-www-form-urlencoded' || ct === '') return decodeForm(body.toString('latin1'));
  throw new PveError(506, `upload 'Content-Type '${ct}' not implemented`);
}

/** Form decoding as pve-http-server does it: `+` is a space, `%XX` bytes, then UTF-8; repeated keys → arrays. */
function decodeForm(text: string): Record<string, RawParam> {
  const out: Record<string, RawParam> = {};
  for (const pair of text.split('&')) {
    if (!pair) continue;
    const i = pair.indexOf('=');
    const k = formDecode(i < 0 ? pair : pair.slice(0, i));
    const v = i < 0 ? '' : formDecode(pair.slice(i + 1));
    const prev = out[k];
    out[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev as RawParam, v];
  }
  return out;
}

function formDecode(s: string): string {
  const bytes = Buffer.from(
    s.replace(/\+/g, ' ').replace(/%([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))),
    'latin1',
  );
  return bytes.toString('utf8');
}

/** Query overrides body; path params are merged and must not conflict with either. */
function mergeParams(body: Record<string, RawParam>, query: Record<string, RawParam>, path: Record<string, string>): Record<string, RawParam> {
  const merged: Record<string, RawParam> = { ...body, ...query };
  const conflicts: Record<string, string> = {};
  for (const [k, v] of Object.entries(path)) {
    if (merged[k] !== undefined && merged[k] !== v) {
      conflicts[k] = 'duplicate parameter (already defined in URI) with conflicting values!';
    }
    merged[k] = v;
  }
  if (Object.keys(conflicts).length) throw paramError(conflicts);
  return merged;
}

function normalize(raw: Record<string, RawParam>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw)) {
    out[k] = typeof v === 'string' ? v : typeof v === 'boolean' ? (v ? '1' : '0') : JSON.stringify(v);
  }
  return out;
}

function commonHeaders(res: ServerResponse): void {
  res.setHeader('Content-Type', 'application/json;charset=UTF-8');
  res.setHeader('Server', 'pve-api-daemon/3.0');
}

function reasonPhrase(message: string): string {
  // Node refuses control characters in the status line; PVE would downgrade such replies anyway.
  return (message.split('\n')[0] ?? '').replace(/[^\t\x20-\x7e\x80-\xff]/g, '?');
}

/** Responses whose request said it takes gzip. */
const acceptsGzip = new WeakSet<ServerResponse>();

/**
 * Writes a JSON body the way `PVE::APIServer::AnyEvent::response` does: gzip (never deflate) when the client
 * accepts it and the body is over 1 KiB, whatever the status; Content-Length of what is actually sent.
 */
function endWithBody(res: ServerResponse, body: string): void {
  const bytes = Buffer.from(body, 'utf8');
  const send = (out: Buffer) => {
    res.setHeader('Content-Length', out.length);
    res.end(out);
  };
  if (bytes.length <= 1024 || !acceptsGzip.has(res)) return send(bytes);
  // Off the event loop: a 10,000-VM resource list is megabytes, and other requests must not wait for it.
  gzip(bytes, (err, zipped) => {
    if (err) return send(bytes);
    res.setHeader('Content-Encoding', 'gzip');
    send(zipped);
  });
}

function sendData(res: ServerResponse, result: unknown): void {
  const envelope = result instanceof Envelope ? { data: result.data ?? null, ...result.siblings } : { data: result ?? null };
  const body = JSON.stringify(envelope);
  commonHeaders(res);
  res.statusCode = 200;
  res.statusMessage = 'OK';
  endWithBody(res, body);
}

function sendError(res: ServerResponse, err: PveError): void {
  if (err.status >= 590) {
    res.statusCode = err.status;
    res.statusMessage = reasonPhrase(err.message);
    res.setHeader('Connection', 'close');
    res.end();
    return;
  }
  const message = err.message.endsWith('\n') ? err.message : `${err.message}\n`;
  const body = JSON.stringify({ data: null, message, ...(err.errors ? { errors: err.errors } : {}) });
  commonHeaders(res);
  res.statusCode = err.status;
  res.statusMessage = reasonPhrase(err.message);
  res.setHeader('Connection', 'close');
  endWithBody(res, body);
}

/** HTTP-level rejects (HEAD, chunked, body on GET/DELETE, too large): plain-text body = reason. */
function sendPlain(res: ServerResponse, status: number, reason: string): void {
  res.statusCode = status;
  res.statusMessage = reason;
  res.setHeader('Server', 'pve-api-daemon/3.0');
  res.setHeader('Content-Type', 'text/plain;charset=UTF-8');
  res.setHeader('Connection', 'close');
  res.end(reason);
}
