import { execFileSync, spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

/**
 * The previous release (release.json) as an operator has it installed: its own source at its commit, its own
 * node_modules from its own lockfile. Installed once under `.tools/previous-release/<commit>/` and reused by later
 * runs; a directory without the marker is a broken install and is made again.
 */
export const repoRoot = resolve(__dirname, '..', '..');

export interface PreviousRelease {
  version: string;
  commit: string;
  /** Its source tree, with its node_modules. */
  root: string;
  /** What its processes need in their environment besides the test's settings (which Temporal binary to run). */
  env: Record<string, string>;
}

interface InstallMarker {
  commit: string;
  installedAt: string;
  /** The dev server binary it runs: the current checkout's when both pin the same version, else its own. */
  temporalCli: 'this-checkout' | 'own';
}

const MARKER = '.pveflow-previous-release.json';
/** The start of the lines test/support/previousReleaseStack.ts writes for the test. */
const PROTOCOL = '@@previous-release ';

export function previousReleaseRecord(): { version: string; commit: string } {
  const release = JSON.parse(readFileSync(join(repoRoot, 'release.json'), 'utf8')) as { previous: { version: string; commit: string } };
  return release.previous;
}

/** Installs the previous release unless a complete install is cached; `say` reports what it does and how long it took. */
export function installPreviousRelease(say: (line: string) => void = () => undefined): PreviousRelease {
  const { version, commit } = previousReleaseRecord();
  const root = join(repoRoot, '.tools', 'previous-release', commit);
  const markerFile = join(root, MARKER);
  if (existsSync(markerFile)) {
    const marker = JSON.parse(readFileSync(markerFile, 'utf8')) as InstallMarker;
    const temporalCli = temporalCliOf(root, marker.temporalCli);
    if (existsSync(temporalCli)) {
      say(`previous release ${version} (${commit.slice(0, 12)}) reused from ${root}`);
      return { version, commit, root, env: { TEMPORAL_CLI_PATH: temporalCli } };
    }
  }

  const started = Date.now();
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  // The commit, not the tag: CI clones without the lead's local tags. `git archive` makes no worktree to clean up.
  say(`previous release ${version}: extracting ${commit.slice(0, 12)} into ${root}`);
  const tar = join(root, '..', `${commit}.tar`);
  try {
    execFileSync('git', ['archive', '--format=tar', '-o', tar, commit], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
    execFileSync('tar', ['-xf', tar, '-C', root], { stdio: ['ignore', 'ignore', 'pipe'] });
  } finally {
    rmSync(tar, { force: true });
  }
  // Its own lockfile; no install scripts: its only one (postinstall) installs Temporal's binaries, dealt with below.
  say(`previous release ${version}: npm ci from its own lockfile`);
  execFileSync('npm', ['ci', '--no-audit', '--no-fund', '--ignore-scripts', '--loglevel=error'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, PVEFLOW_SKIP_TOOLS: '1' } });

  // The dev server owns the SQLite file both releases share. The same pinned version as the current checkout's runs
  // from its .tools; another version is installed by the previous release's own postinstall into its own .tools.
  const pinsOf = (dir: string) => /const pins = (\{[^}]*\})/.exec(readFileSync(join(dir, 'scripts', 'install-temporal-binaries.mjs'), 'utf8'))?.[1];
  const ownPins = pinsOf(root);
  let which: InstallMarker['temporalCli'];
  if (ownPins !== undefined && ownPins === pinsOf(repoRoot) && existsSync(temporalCliOf(root, 'this-checkout'))) {
    which = 'this-checkout';
    say(`previous release ${version}: the same Temporal binaries as this checkout (${ownPins})`);
  } else {
    which = 'own';
    say(`previous release ${version}: its own Temporal binaries (${ownPins ?? 'pins not found'}), by its postinstall`);
    execFileSync('node', ['scripts/install-temporal-binaries.mjs'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  }
  const temporalCli = temporalCliOf(root, which);
  if (!existsSync(temporalCli)) throw new Error(`no Temporal dev server at ${temporalCli} for the previous release`);
  const marker: InstallMarker = { commit, installedAt: new Date().toISOString(), temporalCli: which };
  writeFileSync(markerFile, JSON.stringify(marker, null, 2));
  say(`previous release ${version} installed in ${Math.round((Date.now() - started) / 1000)} s`);
  return { version, commit, root, env: { TEMPORAL_CLI_PATH: temporalCli } };
}

function temporalCliOf(previousRoot: string, which: InstallMarker['temporalCli']): string {
  return join(which === 'own' ? previousRoot : repoRoot, '.tools', 'bin', 'temporal');
}

export interface RunningPreviousRelease {
  apiUrl: string;
  pid: number;
  /** Adds faults to the simulated Proxmox of the previous release's world (the classes of its `sim.faults.set`). */
  setPveFaults(faults: object): Promise<void>;
  clearPveFaults(): Promise<void>;
  /** SIGTERM, as an operator stops it for the upgrade; resolves once it has exited (its process group killed after `graceMs`). */
  stop(graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * The previous release's embedded stack in its own process (test/support/previousReleaseStack.ts, run with its own
 * tsx from its own checkout), with `env` as its whole environment besides PATH and HOME. Its log goes to `logFile`.
 */
export async function startPreviousRelease(release: PreviousRelease, env: Record<string, string>, logFile: string, startTimeoutMs = 120_000): Promise<RunningPreviousRelease> {
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(join(release.root, 'node_modules', '.bin', 'tsx'), [join(__dirname, 'previousReleaseStack.ts')], {
    cwd: release.root,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...release.env, ...env, PREVIOUS_RELEASE_ROOT: release.root },
    stdio: ['pipe', 'pipe', 'pipe'],
    // Its own process group: a stop that has to kill also kills the dev server it started.
    detached: true,
  });
  const killAll = () => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  child.stderr.pipe(log, { end: false });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((ok) => child.once('exit', (code, signal) => ok({ code, signal })));
  const replies = new Map<number, (r: { ok?: boolean; error?: string }) => void>();
  let ready: ((r: { apiUrl: string }) => void) | undefined;
  const readyAnswer = new Promise<{ apiUrl: string }>((ok) => (ready = ok));
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (!line.startsWith(PROTOCOL)) return void log.write(`${line}\n`);
    const message = JSON.parse(line.slice(PROTOCOL.length)) as { ready?: { apiUrl: string }; id?: number; ok?: boolean; error?: string };
    if (message.ready) ready?.(message.ready);
    if (typeof message.id === 'number') replies.get(message.id)?.(message);
  });
  let timer: NodeJS.Timeout | undefined;
  const started = await Promise.race([
    readyAnswer,
    exited.then(({ code, signal }) => new Error(`the previous release ${release.version} exited (${code ?? signal}) before it served; see ${logFile}`)),
    new Promise<Error>((ok) => (timer = setTimeout(() => ok(new Error(`the previous release ${release.version} did not start within ${startTimeoutMs} ms; see ${logFile}`)), startTimeoutMs))),
  ]);
  clearTimeout(timer);
  if (started instanceof Error) {
    killAll();
    await exited;
    log.end();
    throw started;
  }

  let nextId = 0;
  const command = async (body: object) => {
    const id = ++nextId;
    const answer = new Promise<{ ok?: boolean; error?: string }>((ok) => replies.set(id, ok));
    child.stdin.write(`${JSON.stringify({ id, ...body })}\n`);
    const r = await answer;
    replies.delete(id);
    if (r.error) throw new Error(`previous release: ${r.error}`);
  };
  return {
    apiUrl: started.apiUrl,
    pid: child.pid!,
    setPveFaults: (faults) => command({ pveFaults: faults }),
    clearPveFaults: () => command({ clearPveFaults: true }),
    async stop(graceMs = 60_000) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const killer = setTimeout(killAll, graceMs);
      const result = await exited;
      clearTimeout(killer);
      log.end();
      return result;
    },
  };
}
