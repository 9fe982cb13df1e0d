import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, existsSync, openSync, readFileSync, statSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Connection } from '@temporalio/client';
import { SearchAttributeType } from '@temporalio/common';
import type { SearchAttributeKey } from '@temporalio/common/lib/search-attributes';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { resolveTemporalBinary } from '../temporal/binaries';
import { listenFailure } from '../net/listenOn';

export interface DevServerOptions {
  ip: string;
  port: number;
  uiPort: number;
  /** SQLite file: the embedded default's durable state. */
  dbFile: string;
  namespace: string;
  searchAttributes: SearchAttributeKey<SearchAttributeType>[];
  logFile: string;
  /** Temporal UI's remote codec endpoint (`--ui-codec-endpoint`): where the browser asks for payloads decrypted. */
  codecEndpoint?: string;
}

export interface RunningDevServer {
  address: string;
  uiUrl: string;
  stop(): Promise<void>;
  /**
   * SIGKILL, no shutdown: what a crash or an OOM kill does (chaos tests restart it on the same file and port).
   * Only for the project's own binary; the SDK's download runs under the SDK's control.
   */
  kill?(): Promise<void>;
  /** The server's process, when it is the project's own binary run by us. */
  pid?: number;
}

/** What the dev server needs from our environment to run: where things are, the locale, the clock, trusted CAs. */
const DEV_SERVER_ENV = /^(PATH|HOME|USER|TMPDIR|TMP|TEMP|LANG|LANGUAGE|LC_[A-Z]+|TZ|SSL_CERT_FILE|SSL_CERT_DIR)$/;

/**
 * The dev server's environment: only DEV_SERVER_ENV. Ours holds API keys, the webhook secret, codec keys and the
 * Proxmox and NetBird tokens; a child has no use for them, and anything that can read its environment
 * (`/proc/<pid>/environ`, a crash report) would get them.
 */
export function devServerEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name, value]) => value !== undefined && DEV_SERVER_ENV.test(name)));
}

/**
 * WAL lets readers (the UI, visibility queries) proceed while the server writes; synchronous=NORMAL is the WAL
 * setting SQLite recommends (durable across a process crash, only an OS crash can lose the last transactions).
 * Chosen from measurements: docs/performance.md, "SQLite settings of the embedded default".
 */
export const defaultSqlitePragmas = ['journal_mode=wal', 'synchronous=normal'];

/**
 * `PVEFLOW_DEV_SERVER_SQLITE_PRAGMAS` (comma-separated `name=value`) replaces the defaults: for the benches that
 * compare settings, not a deployment knob (a deployment with other needs runs its own Temporal cluster).
 */
function sqlitePragmasFromEnv(env: NodeJS.ProcessEnv = process.env): string[] | undefined {
  const raw = env.PVEFLOW_DEV_SERVER_SQLITE_PRAGMAS?.trim();
  if (!raw) return undefined;
  const pragmas = raw
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean);
  const bad = pragmas.find((p) => !/^[a-z_]+=[A-Za-z0-9_]+$/.test(p));
  if (bad) throw new Error(`PVEFLOW_DEV_SERVER_SQLITE_PRAGMAS: "${bad}" is not name=value (e.g. journal_mode=wal,synchronous=full)`);
  return pragmas;
}

const cliType: Record<SearchAttributeType, string> = {
  [SearchAttributeType.TEXT]: 'Text',
  [SearchAttributeType.KEYWORD]: 'Keyword',
  [SearchAttributeType.INT]: 'Int',
  [SearchAttributeType.DOUBLE]: 'Double',
  [SearchAttributeType.BOOL]: 'Bool',
  [SearchAttributeType.DATETIME]: 'Datetime',
  [SearchAttributeType.KEYWORD_LIST]: 'KeywordList',
};

/**
 * Temporal's dev server with its UI, on a SQLite file so that requests survive a restart (`defaultSqlitePragmas`).
 * The project's own binary is run directly (its process is ours to stop); without one, the SDK downloads it.
 */
export async function startDevServer(opts: DevServerOptions): Promise<RunningDevServer> {
  // The database holds every request (its search attributes in clear) and the log names them: the operator's alone.
  // Files an earlier version left readable are narrowed; the server makes new ones under a umask of 077 (an empty
  // database file made here would pass for one already set up).
  const files = [opts.dbFile, `${opts.dbFile}-wal`, `${opts.dbFile}-shm`, opts.logFile];
  for (const file of files) if (existsSync(file)) chmodSync(file, 0o600);
  const address = `${opts.ip}:${opts.port}`;
  const uiUrl = `http://${opts.ip}:${opts.uiPort}`;
  const args = [
    '--ui-disable-news-fetch',
    ...(sqlitePragmasFromEnv() ?? defaultSqlitePragmas).flatMap((p) => ['--sqlite-pragma', p]),
    '--ui-ip',
    opts.ip,
    ...(opts.codecEndpoint ? ['--ui-codec-endpoint', opts.codecEndpoint] : []),
  ];
  const source = resolveTemporalBinary('temporal');
  if (source.type === 'cached-download') {
    const env = await ownerOnlyFiles(() =>
      TestWorkflowEnvironment.createLocal({
        server: {
          executable: { type: 'cached-download' },
          ip: opts.ip,
          port: opts.port,
          ui: true,
          uiPort: opts.uiPort,
          dbFilename: opts.dbFile,
          namespace: opts.namespace,
          searchAttributes: opts.searchAttributes,
          extraArgs: args,
        },
      }),
    );
    return { address, uiUrl, stop: () => env.teardown() };
  }

  // The log is appended to across starts: only what this start writes explains how it ended.
  const logFrom = existsSync(opts.logFile) ? statSync(opts.logFile).size : 0;
  const logFd = openSync(opts.logFile, 'a', 0o600);
  const child = ownerOnlyFiles(() =>
    spawn(
      source.path,
      [
        'server',
        'start-dev',
        '--ip',
        opts.ip,
        '--port',
        String(opts.port),
        '--ui-port',
        String(opts.uiPort),
        '--db-filename',
        opts.dbFile,
        '--namespace',
        opts.namespace,
        '--log-level',
        'warn',
        ...args,
        ...opts.searchAttributes.flatMap((k) => ['--search-attribute', `${k.name}=${cliType[k.type]}`]),
      ],
      { stdio: ['ignore', logFd, logFd], env: devServerEnv() },
    ),
  );
  closeSync(logFd);
  await waitUntilServing(child, address, { ...opts, logFrom });
  return { address, uiUrl, pid: child.pid, stop: () => stopChild(child), kill: () => killChild(child) };
}

/**
 * Runs `start` under a umask of 077, until it has settled: a child started meanwhile inherits it, and makes its files
 * its owner's alone (anything else made meanwhile is narrowed too, never widened).
 */
function ownerOnlyFiles<T>(start: () => T): T {
  const previous = process.umask(0o077);
  let started: T;
  try {
    started = start();
  } catch (err) {
    process.umask(previous);
    throw err;
  }
  if (started instanceof Promise) return started.finally(() => process.umask(previous)) as T;
  process.umask(previous);
  return started;
}

async function waitUntilServing(child: ChildProcess, address: string, opts: ExitContext): Promise<void> {
  const deadline = Date.now() + 60_000;
  let exited: number | null = null;
  child.once('exit', (code) => (exited = code ?? -1));
  for (;;) {
    if (exited !== null) throw new Error(exitedBeforeServing(exited, opts));
    let conn: Connection | undefined;
    try {
      conn = await Connection.connect({ address, connectTimeout: 1_000 });
      // Bounded: whatever else answers on the port (the dev server gone, another program there) may never reply.
      const connected = conn;
      await connected.withDeadline(Date.now() + 2_000, () => connected.workflowService.getSystemInfo({}));
      return;
    } catch {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`Temporal dev server did not serve on ${address} within 60 s; see ${opts.logFile}`);
      }
      await sleep(250);
    } finally {
      // Each attempt's connection, failed or not: a leftover one kept the process alive.
      await conn?.close().catch(() => undefined);
    }
  }
}

/** Where a start's dev server was to listen, and where its log of this start begins. */
type ExitContext = Pick<DevServerOptions, 'ip' | 'port' | 'uiPort' | 'logFile'> & { logFrom: number };

/**
 * Why the dev server stopped, in the operator's terms: a port someone else holds names its setting; anything else
 * quotes the last lines of its log.
 */
export function exitedBeforeServing(code: number, opts: ExitContext): string {
  let log = '';
  try {
    log = readFileSync(opts.logFile).subarray(opts.logFrom).toString('utf8');
  } catch {
    // No log: the binary did not even start writing one; the exit code is all there is.
  }
  const inUse = /listen tcp [^:\s]*:(\d+): bind: address already in use/.exec(log);
  if (inUse) {
    const port = Number(inUse[1]);
    const setting = port === opts.port ? 'TEMPORAL_PORT' : port === opts.uiPort ? 'TEMPORAL_UI_PORT' : undefined;
    // The same sentence as every other server of ours that finds its port taken (src/net/listenOn.ts).
    const refusal = listenFailure({ name: 'Error', message: inUse[0], code: 'EADDRINUSE' }, opts.ip, port, { what: 'the Temporal dev server', ...(setting ? { portSetting: setting } : {}) });
    return `${refusal} (see ${opts.logFile})`;
  }
  const tail = log.trim().split('\n').slice(-3).join(' | ').slice(-600);
  return `Temporal dev server exited with ${code} before serving${tail ? `: ${tail}` : ''} (see ${opts.logFile})`;
}

async function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(killer);
}
