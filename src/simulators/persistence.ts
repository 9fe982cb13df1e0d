import { closeSync, existsSync, fsyncSync, openSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import type { NetbirdAccountSnapshot } from './netbird';
import type { PveSnapshot } from './pve';

/**
 * The simulated world kept across restarts of `npm start`: one JSON file beside the world's other files (CA, keys,
 * snippets), written whenever something changed (at most one write per `debounceMs`) and when the world stops,
 * always to a temporary file that is then renamed over the old one, so that a crash mid-write leaves the previous
 * state, never half of one. The snippets are files already and stay where they are.
 */
export const WORLD_STATE_FILE = 'world.json';
const FORMAT = 'pveflow-simulated-world';
const VERSION = 1;

export interface WorldSnapshot {
  format: typeof FORMAT;
  version: typeof VERSION;
  savedAt: string;
  /** The tokens pveflow and a person use: a restart must not invalidate what someone copied. */
  secrets: { pveToken: string; pveRootToken: string; netbirdToken: string };
  /** The SFTP endpoints' keys and ports: the pinned host keys and the addresses stay what they were. */
  sftp: { client: { privateKey: string; publicKey: string }; nodes: Record<string, { hostKey: string; port: number }> };
  pve: PveSnapshot;
  netbird: NetbirdAccountSnapshot;
}

/**
 * Checked when read back: the file is ours, but a person may have edited it or an older pveflow written it. The
 * models' records pass through as they are (`loose`), so that what a simulator adds to its snapshot needs no change here.
 */
const record = z.looseObject({});
const snapshotSchema = z.object({
  format: z.literal(FORMAT),
  version: z.literal(VERSION),
  savedAt: z.string(),
  secrets: z.object({ pveToken: z.string().min(1), pveRootToken: z.string().min(1), netbirdToken: z.string().min(1) }),
  sftp: z.object({
    client: z.object({ privateKey: z.string(), publicKey: z.string() }),
    nodes: z.record(z.string(), z.object({ hostKey: z.string(), port: z.number().int().min(0).max(65535) })),
  }),
  pve: z.looseObject({
    vms: z.array(z.looseObject({ vmid: z.number().int(), node: z.string(), config: z.record(z.string(), z.string()) })),
    ha: z.array(record),
    tasks: z.array(z.looseObject({ upid: z.string(), lines: z.array(z.string()) })),
    allocations: z.record(z.string(), z.number()),
    nextLease: z.number().int(),
  }),
  netbird: z.looseObject({
    allGroupId: z.string(),
    users: z.array(record),
    peers: z.array(record),
    groups: z.array(record),
    policies: z.array(record),
    setupKeys: z.array(record),
  }),
});

/** The state an earlier run left in `dir`, or undefined when there is none. Throws, naming the file, when it is unusable. */
export function loadWorldState(dir: string): WorldSnapshot | undefined {
  const file = join(dir, WORLD_STATE_FILE);
  // A write cut short by a crash leaves its temporary file; the state file itself is the previous whole one.
  if (existsSync(dir)) {
    for (const f of readdirSync(dir)) if (/^world\.json\.\d+\.tmp$/.test(f)) rmSync(join(dir, f), { force: true });
  }
  if (!existsSync(file)) return undefined;
  const fix = `start afresh with \`npm start -- --reset-sim\` (the simulated VMs and VPN peers are then gone), or restore the file from a backup`;
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new Error(`the simulated world's state ${file} cannot be read (${(err as Error).message}): ${fix}`, { cause: err });
  }
  const parsed = snapshotSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new Error(`the simulated world's state ${file} is not one this pveflow reads (${issue.path.join('.') || 'the file'}: ${issue.message}): ${fix}`);
  }
  return parsed.data as unknown as WorldSnapshot;
}

/**
 * Forgets the world: its state file and every node's snippets. The CA and the key files stay (a client that trusts
 * the CA keeps trusting it); the tokens are made anew with the next world.
 */
export function resetWorldState(dir: string): { hadState: boolean } {
  const file = join(dir, WORLD_STATE_FILE);
  const hadState = existsSync(file);
  rmSync(file, { force: true });
  const nodes = join(dir, 'nodes');
  if (existsSync(nodes)) for (const node of readdirSync(nodes)) rmSync(join(nodes, node, 'snippets'), { recursive: true, force: true });
  return { hadState };
}

/** Writes `text` so that `path` holds either its old content or all of the new one, never a part (mode 0600). */
export async function writeFileAtomically(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  const handle = await open(tmp, 'w', 0o600);
  try {
    await handle.writeFile(text);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, path);
  // The rename itself is durable only once the directory is synced (best effort: not every file system allows it).
  try {
    const fd = openSync(dirname(path), 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    /* a directory that cannot be opened for sync: the rename stands, only its durability across a power cut is weaker */
  }
}

/**
 * Saves the world after changes: the first change after a save schedules the next one `debounceMs` later, and every
 * change until then rides along. So a busy world is written at most once per `debounceMs`, a quiet one not at all,
 * and a change is on disk within `debounceMs` (plus the write). `stop()` writes what is left.
 */
export class WorldSaver {
  private timer: NodeJS.Timeout | undefined;
  private dirty = false;
  private stopped = false;
  private writing: Promise<void> = Promise.resolve();
  private warned = false;

  constructor(
    readonly file: string,
    private readonly snapshot: () => WorldSnapshot,
    private readonly debounceMs = 1_000,
  ) {}

  changed(): void {
    if (this.stopped) return;
    this.dirty = true;
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.save();
    }, this.debounceMs);
    this.timer.unref();
  }

  /** Writes now, after any write under way. */
  save(): Promise<void> {
    this.dirty = false;
    const text = `${JSON.stringify(this.snapshot())}\n`;
    this.writing = this.writing.then(() =>
      writeFileAtomically(this.file, text).catch((err: unknown) => {
        this.dirty = true;
        if (this.warned) return;
        this.warned = true;
        process.emitWarning(`the simulated world could not be saved to ${this.file}: ${(err as Error).message}; a restart would lose what changed since`);
      }),
    );
    return this.writing;
  }

  /** The last write; afterwards changes are ignored (the world is stopping). */
  async stop(): Promise<void> {
    if (this.stopped) return this.writing;
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.save();
  }
}
