/**
 * A consultant's own machine: a NetBird client, in a network namespace of its own, registered as a NetBird USER's
 * peer (so that the user's `auto_groups` apply to it, as they do to a consultant's laptop), not with a setup key.
 *
 * How NetBird v0.77.1 does it (read from its source), and how this drives it without a browser:
 * - A user on an account whose identity provider is the built-in one (Dex, under `<exposedAddress>/oauth2`) is made
 *   with `POST /api/users` (`is_service_user: false`): the server creates the Dex login with a random password and
 *   answers it, once, as `password` (`createNetbirdUser`).
 * - `netbird up` without a setup key on Linux with no graphical session uses OAuth's device authorization flow with
 *   Dex (PKCE with a loopback redirect is only tried on desktops): it prints the verification URL
 *   (`<issuer>/device?user_code=…`, with `--no-browser` it opens nothing), polls Dex's token endpoint, and logs in to
 *   management with the user's JWT.
 * - `signInThroughDex` plays the user's browser with plain HTTP: the device page's form (the code), Dex's connector
 *   choice (the local, e-mail/password one), the password form; the approval screen is skipped by NetBird's Dex
 *   configuration (answered anyway if shown). The client then finishes on its own.
 *
 * The server side is whatever harness runs NetBird's server: this module needs only `UserPeerServer`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export const DEFAULT_NETBIRD_CLIENT_BIN = join(__dirname, '..', '..', '.tools', 'netbird', 'bin', 'netbird');

/** What this module needs of a running NetBird server. */
export interface UserPeerServer {
  /** The URL peers are told (the server's exposedAddress); Dex's pages and redirects name this origin. */
  managementUrl: string;
  /** The same server as this process reaches it (REST API, and Dex under /oauth2): the user's "browser" goes there. */
  apiUrl: string;
  /** A personal access token allowed to list peers (the owner's). */
  token: string;
  /** Makes a network namespace named `name` in which `managementUrl` reaches the server. */
  openPeerNamespace(name: string): Promise<PeerNamespace>;
}

export interface PeerNamespace {
  name: string;
  /** Kills whatever still runs in it and removes it. */
  close(): Promise<void>;
}

export interface NetbirdUser {
  id: string;
  email: string;
  /** The password NetBird generated for the user's Dex login (answered only by the create call). */
  password: string;
  autoGroups: string[];
}

/** `POST /api/users`: a (non-service) user of the account, with a Dex login of the built-in identity provider. */
export async function createNetbirdUser(server: Pick<UserPeerServer, 'apiUrl' | 'token'>, user: { email: string; name: string; autoGroups: string[]; role?: 'user' | 'admin' }): Promise<NetbirdUser> {
  const res = await fetch(`${server.apiUrl}/api/users`, {
    method: 'POST',
    headers: { authorization: `Token ${server.token}`, 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ email: user.email, name: user.name, role: user.role ?? 'user', auto_groups: user.autoGroups, is_service_user: false }),
  });
  const body = (await res.json().catch(() => ({}))) as { id?: string; password?: string; message?: string };
  if (!res.ok || !body.id) throw new Error(`POST /api/users for ${user.email} answered ${res.status}: ${body.message ?? JSON.stringify(body)}`);
  if (!body.password) throw new Error(`POST /api/users for ${user.email} answered no password: is the server's identity provider the built-in one?`);
  return { id: body.id, email: user.email, password: body.password, autoGroups: user.autoGroups };
}

export interface UserPeer {
  hostname: string;
  namespace: string;
  /** The peer as /api/peers showed it once connected. */
  peer: NetbirdApiPeer;
  /** Runs `command args…` inside the peer's namespace; never rejects on a non-zero exit. */
  exec(command: string, args: string[], opts?: { timeoutMs?: number; input?: string }): Promise<{ status: number | null; stdout: string; stderr: string }>;
  /** The client's log so far. */
  log(): string;
  /** Stops the client, removes its namespace and files. The peer stays registered in NetBird, as a laptop switched off. */
  stop(): Promise<void>;
}

export interface NetbirdApiPeer {
  id: string;
  name: string;
  hostname: string;
  ip: string;
  connected: boolean;
  user_id?: string;
  groups: Array<{ id: string; name: string }>;
}

export interface LoginPeerAsUserOptions {
  server: UserPeerServer;
  /**
   * Namespace names start with it (the caller's branch name), then this process's pid: the shape netbirdServer.ts's
   * start-up clean-up reads, so a namespace a killed test left behind is removed by the next run.
   */
  namespacePrefix: string;
  email: string;
  password: string;
  hostname: string;
  clientBin?: string;
  /** For the whole login: the client started, signed in, registered and connected. */
  timeoutMs?: number;
}

let peers = 0;

/**
 * Starts `netbird up` (no setup key) in a namespace of its own, signs the user in through Dex, and resolves once the
 * peer shows connected in /api/peers. Fails with the client's log when any stage does not happen.
 */
export async function loginPeerAsUser(opts: LoginPeerAsUserOptions): Promise<UserPeer> {
  const { server, hostname } = opts;
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  const cleanup: Array<() => Promise<void> | void> = [];
  const stop = async () => {
    for (const step of cleanup.splice(0).reverse()) {
      try {
        await step();
      } catch {
        // Best effort: the next step still runs, so nothing is left behind.
      }
    }
  };
  const dir = mkdtempSync(join(tmpdir(), 'pveflow-nb-user-peer-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const logFile = join(dir, 'client.log');
  const log = () => readLog(logFile);
  try {
    const ns = await server.openPeerNamespace(`${opts.namespacePrefix}-${process.pid}-u${++peers}`);
    cleanup.push(() => ns.close());
    const client = startInNamespace(
      ns.name,
      opts.clientBin ?? DEFAULT_NETBIRD_CLIENT_BIN,
      // --no-browser: print the URL only; --disable-dns: the client leaves the namespace's resolver alone.
      ['up', '--foreground-mode', '--no-browser', '--management-url', server.managementUrl, '--hostname', hostname, '--daemon-addr', `unix://${dir}/nb.sock`, '--log-file', 'console', '--disable-dns'],
      // HOME and NB_STATE_DIR: the client's profiles and state stay in this peer's own directory.
      { NB_STATE_DIR: dir, HOME: dir },
      logFile,
    );
    cleanup.push(() => stopProcess(client));

    const verificationUrl = await waitFor(
      () => {
        if (client.exitCode !== null) throw new Error(`netbird up for ${hostname} exited (${client.exitCode}) before asking for a login:\n${log().slice(-3000)}`);
        return /Use this URL to log in:\s+(\S+)/.exec(log())?.[1];
      },
      deadline,
      () => `netbird up for ${hostname} printed no login URL:\n${log().slice(-3000)}`,
    );
    await signInThroughDex({ url: verificationUrl, email: opts.email, password: opts.password, reach: (url) => url.replace(new URL(server.managementUrl).origin, new URL(server.apiUrl).origin) });

    const peer = await waitFor(
      async () => {
        if (client.exitCode !== null) throw new Error(`netbird up for ${hostname} exited (${client.exitCode}) after the login:\n${log().slice(-3000)}`);
        const found = (await listPeers(server)).find((p) => p.hostname === hostname || p.name === hostname);
        return found?.connected ? found : undefined;
      },
      deadline,
      () => `${hostname} signed in as ${opts.email} but did not show connected in /api/peers:\n${log().slice(-3000)}`,
    );
    return {
      hostname,
      namespace: ns.name,
      peer,
      log,
      exec: (command, args, o = {}) => execIn(ns.name, command, args, o),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

export async function listPeers(server: Pick<UserPeerServer, 'apiUrl' | 'token'>): Promise<NetbirdApiPeer[]> {
  const res = await fetch(`${server.apiUrl}/api/peers`, { headers: { authorization: `Token ${server.token}`, accept: 'application/json' } });
  if (!res.ok) throw new Error(`GET /api/peers answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as NetbirdApiPeer[];
}

/**
 * The user's browser on Dex's pages, in plain HTTP: follows redirects itself (keeping Dex's cookies), submits the
 * device page's code, picks the local (e-mail/password) connector, submits the password, approves if asked, and
 * returns once Dex says the device is authorized. `reach` maps a URL Dex names (the server's exposed origin) to one
 * this process can open.
 */
export async function signInThroughDex(opts: { url: string; email: string; password: string; reach?: (url: string) => string }): Promise<void> {
  const reach = opts.reach ?? ((u: string) => u);
  const cookies = new Map<string, string>();
  const trail: string[] = [];
  let request: { url: string; method: 'GET' | 'POST'; form?: Record<string, string> } = { url: opts.url, method: 'GET' };
  let passwordSent = false;
  for (let step = 0; step < 20; step++) {
    const url = reach(request.url);
    trail.push(`${request.method} ${new URL(url).pathname}`);
    const res = await fetch(url, {
      method: request.method,
      redirect: 'manual',
      headers: { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; '), ...(request.form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
      body: request.form ? new URLSearchParams(request.form).toString() : undefined,
      signal: AbortSignal.timeout(10_000),
    });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair!.indexOf('=');
      cookies.set(pair!.slice(0, eq).trim(), pair!.slice(eq + 1).trim());
    }
    const location = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && location) {
      request = { url: new URL(location, url).toString(), method: 'GET' };
      continue;
    }
    const html = await res.text();
    const fail = (why: string) => new Error(`Dex sign-in of ${opts.email}: ${why} (after ${trail.join(' → ')}; HTTP ${res.status}): ${textOf(html).slice(0, 500)}`);
    const forms = parseForms(html, url);
    const withField = (name: string) => forms.find((f) => name in f.fields);
    // Dex answers a refused password with its form again (HTTP 401).
    if (passwordSent && withField('password')) throw fail('the e-mail and password were refused');
    if (!res.ok) throw fail('Dex answered an error');
    if (/Device Authorized|successfully authorized/i.test(html)) return;
    if (withField('password')) {
      const form = withField('password')!;
      passwordSent = true;
      request = { url: form.action, method: 'POST', form: { ...form.fields, login: opts.email, password: opts.password } };
    } else if (withField('user_code')) {
      const form = withField('user_code')!;
      if (!form.fields.user_code) throw fail('the device page holds no code');
      request = { url: form.action, method: 'POST', form: form.fields };
    } else if (forms.some((f) => f.fields.approval === 'approve')) {
      const form = forms.find((f) => f.fields.approval === 'approve')!;
      request = { url: form.action, method: 'POST', form: form.fields };
    } else {
      // The connector choice: the local (e-mail/password) one.
      const link = [...html.matchAll(/<a\s[^>]*href="([^"]*\/auth\/local[^"]*)"/g)].map((m) => decodeEntities(m[1]!))[0];
      if (!link) throw fail('a page with nothing to submit');
      request = { url: new URL(link, url).toString(), method: 'GET' };
    }
  }
  throw new Error(`Dex sign-in of ${opts.email} did not finish in 20 steps: ${trail.join(' → ')}`);
}

interface HtmlForm {
  action: string;
  fields: Record<string, string>;
}

/** The forms of a page Dex rendered (its own templates: no nesting, attributes in double quotes). */
function parseForms(html: string, pageUrl: string): HtmlForm[] {
  return [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)].map((m) => {
    const action = decodeEntities(/\baction="([^"]*)"/i.exec(m[1]!)?.[1] ?? '');
    const fields: Record<string, string> = {};
    for (const input of m[2]!.matchAll(/<input\b([^>]*)>/gi)) {
      const name = /\bname="([^"]*)"/i.exec(input[1]!)?.[1];
      if (name && !/\btype="(checkbox|submit)"/i.test(input[1]!)) fields[decodeEntities(name)] = decodeEntities(/\bvalue="([^"]*)"/i.exec(input[1]!)?.[1] ?? '');
    }
    return { action: new URL(action || pageUrl, pageUrl).toString(), fields };
  });
}

function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos);/gi, (_, e: string) => {
    const named: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
    if (e[0] !== '#') return named[e.toLowerCase()]!;
    return String.fromCodePoint(e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
  });
}

function textOf(html: string): string {
  return html
    .replace(/<(script|style)[\s\S]*?<\/\1>/gi, '')
    .replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

/** In a process group of its own, so that stopping it stops whatever it forked. */
function startInNamespace(namespace: string, bin: string, args: string[], env: Record<string, string>, logFile: string): ChildProcess {
  const out = openSync(logFile, 'a');
  const child = spawn('ip', ['netns', 'exec', namespace, bin, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', out, out], detached: true });
  closeSync(out);
  return child;
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  process.kill(-child.pid!, 'SIGTERM');
  if (!(await Promise.race([exited.then(() => true), sleep(5_000).then(() => false)]))) {
    process.kill(-child.pid!, 'SIGKILL');
    await exited;
  }
}

function execIn(namespace: string, command: string, args: string[], opts: { timeoutMs?: number; input?: string }): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('ip', ['netns', 'exec', namespace, command, ...args], { stdio: ['pipe', 'pipe', 'pipe'], timeout: opts.timeoutMs ?? 10_000, killSignal: 'SIGKILL' });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err) => resolve({ status: null, stdout, stderr: stderr + err.message }));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
    child.stdin.end(opts.input ?? '');
  });
}

async function waitFor<T>(probe: () => T | undefined | Promise<T | undefined>, deadline: number, timeoutMessage: () => string): Promise<T> {
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(timeoutMessage());
    await sleep(250);
  }
}

function readLog(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
