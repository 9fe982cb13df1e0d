import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freePort } from './ports';
import { waitFor } from './waitFor';

/**
 * Toxiproxy (built by scripts/install-toxiproxy.sh) as the tests' fault proxy: a TCP proxy per pair of peers, on
 * 127.0.0.1, through which one side reaches the other, and "toxics" that spoil what passes. The faults a network
 * really has, in Toxiproxy's terms:
 *
 * | fault                | toxic                       | what the client sees                                        |
 * | -------------------- | --------------------------- | ----------------------------------------------------------- |
 * | latency              | `latency` (ms, both ways)   | every answer late                                           |
 * | bandwidth limit      | `bandwidth` (KB/s)          | large bodies slow, small calls fine                         |
 * | silent hang          | `timeout` with timeout 0    | connected, bytes vanish, nothing is ever closed             |
 * | reset                | `reset_peer`                | the connection reset (RST) after `timeout` ms               |
 * | partition            | the proxy disabled          | existing connections cut, new ones refused                  |
 *
 * A silent hang is Toxiproxy's `timeout` toxic with no timeout: data is dropped until the toxic is removed, and new
 * connections are accepted into the same void. That is what a stalled firewall state or a half-dead peer looks like.
 */
const root = resolve(__dirname, '..', '..');
export const toxiproxyBinary = join(root, '.tools', 'toxiproxy', 'bin', 'toxiproxy-server');

/** Why the fault proxy cannot run here, or undefined when it can; in CI its absence is an error, not a skip. */
export function faultProxyUnavailable(): string | undefined {
  if (existsSync(toxiproxyBinary)) return undefined;
  const reason = `${toxiproxyBinary} is missing: run npm run install:toxiproxy (Go from the module proxy)`;
  if (process.env.CI) throw new Error(`${reason} (CI must install it: .ci/run)`);
  return reason;
}

export type Fault = { kind: 'latency'; ms: number; jitterMs?: number } | { kind: 'bandwidth'; kilobytesPerSecond: number } | { kind: 'silent-hang' } | { kind: 'reset'; afterMs?: number } | { kind: 'partition' };

export function describeFault(f: Fault): string {
  switch (f.kind) {
    case 'latency':
      return `latency ${f.ms} ms`;
    case 'bandwidth':
      return `bandwidth ${f.kilobytesPerSecond} KB/s`;
    case 'silent-hang':
      return 'silent hang';
    case 'reset':
      return `reset after ${f.afterMs ?? 0} ms`;
    case 'partition':
      return 'partition';
  }
}

export interface ProxiedLink {
  name: string;
  /** Where the client is pointed instead of the upstream: `127.0.0.1:<port>`. */
  listen: string;
  port: number;
  upstream: string;
}

export interface FaultProxy {
  /** Toxiproxy's REST API, `http://127.0.0.1:<port>`. */
  apiUrl: string;
  /** A new proxy `name` listening on a free port of 127.0.0.1, forwarding to `upstream` (`host:port`). */
  link(name: string, upstream: string): Promise<ProxiedLink>;
  /** Puts `fault` on the link; resolves once Toxiproxy applies it. The returned function heals it. */
  inject(link: ProxiedLink, fault: Fault): Promise<() => Promise<void>>;
  /** Removes every toxic and enables every proxy. */
  healAll(): Promise<void>;
  stop(): Promise<void>;
}

export async function startFaultProxy(opts: { logFile: string }): Promise<FaultProxy> {
  const reason = faultProxyUnavailable();
  if (reason) throw new Error(reason);
  const port = await freePort();
  const apiUrl = `http://127.0.0.1:${port}`;
  const out = openSync(opts.logFile, 'a');
  // A fixed seed: toxicity is always 1 here, but Toxiproxy draws its random numbers anyway.
  const child: ChildProcess = spawn(toxiproxyBinary, ['-host', '127.0.0.1', '-port', String(port), '-seed', '1'], { stdio: ['ignore', out, out] });
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()));

  const api = async (method: string, path: string, body?: unknown): Promise<any> => {
    const res = await fetch(`${apiUrl}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(5_000),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`toxiproxy ${method} ${path}: ${res.status} ${text}`);
    // /version answers plain text (the module's build says `git`); the rest JSON.
    return /json/.test(res.headers.get('content-type') ?? '') ? JSON.parse(text) : text;
  };
  await waitFor('toxiproxy to answer', async () => ((await api('GET', '/version')) !== undefined ? true : undefined), 20_000, 100);

  let toxics = 0;
  return {
    apiUrl,
    async link(name, upstream) {
      const listenPort = await freePort();
      await api('POST', '/proxies', { name, listen: `127.0.0.1:${listenPort}`, upstream, enabled: true });
      return { name, listen: `127.0.0.1:${listenPort}`, port: listenPort, upstream };
    },
    async inject(link, fault) {
      if (fault.kind === 'partition') {
        await api('POST', `/proxies/${link.name}`, { enabled: false });
        return async () => void (await api('POST', `/proxies/${link.name}`, { enabled: true }));
      }
      const [type, attributes, streams]: [string, Record<string, number>, Array<'upstream' | 'downstream'>] =
        fault.kind === 'latency'
          ? ['latency', { latency: fault.ms, jitter: fault.jitterMs ?? 0 }, ['downstream']]
          : fault.kind === 'bandwidth'
            ? ['bandwidth', { rate: fault.kilobytesPerSecond }, ['upstream', 'downstream']]
            : fault.kind === 'silent-hang'
              ? ['timeout', { timeout: 0 }, ['upstream', 'downstream']]
              : ['reset_peer', { timeout: fault.afterMs ?? 0 }, ['upstream']];
      const names = streams.map((stream) => ({ stream, name: `${type}-${stream}-${++toxics}` }));
      for (const { stream, name } of names) await api('POST', `/proxies/${link.name}/toxics`, { name, type, stream, toxicity: 1, attributes });
      return async () => {
        for (const { name } of names) await api('DELETE', `/proxies/${link.name}/toxics/${name}`);
      };
    },
    async healAll() {
      await api('POST', '/reset');
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await Promise.race([exited, sleep(5_000).then(() => child.kill('SIGKILL'))]);
    },
  };
}

/** `fn` while `fault` lies on `link`, then healed, whatever `fn` did. */
export async function during<T>(proxy: FaultProxy, link: ProxiedLink, fault: Fault, fn: () => Promise<T>): Promise<T> {
  const heal = await proxy.inject(link, fault);
  try {
    return await fn();
  } finally {
    await heal();
  }
}
