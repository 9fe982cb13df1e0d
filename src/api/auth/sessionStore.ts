import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Principal } from './apiKeys';
import type { SessionTimes } from './oidcSettings';

/** A signed-in person's console session, as every API process reads it. */
export interface SessionRecord {
  principal: Principal;
  /** Sent back by the console in a header on every call that changes something (sessionAuth.ts). */
  csrf: string;
  createdAt: number;
  seenAt: number;
  /** The provider's ID token, kept only as the hint of an RP-initiated sign-out. */
  idToken?: string;
}

/** A sign-in under way: what the callback must find again, once. */
export interface PendingLogin {
  verifier: string;
  nonce: string;
  createdAt: number;
}

/** How long a person may take at the provider's login page. */
const LOGIN_TTL_MS = 10 * 60_000;
/** A session's last use is written at most this often: an idle expiry of minutes does not need a write per call. */
const TOUCH_EVERY_MS = 60_000;
/** How often a process clears the records of sessions nobody came back to and of sign-ins left at the provider. */
const SWEEP_EVERY_MS = 10 * 60_000;

const token = () => randomBytes(32).toString('base64url');
const fileOf = (secret: string) => createHash('sha256').update(secret, 'utf8').digest('hex');

/**
 * Console sessions and pending sign-ins as files in one directory that every API process of the deployment shares
 * (SESSION_DIR: a volume, like CREDENTIAL_KEYS_DIR). Why files: pveflow has no database of its own, Temporal is no
 * session store, and a cookie holding the whole session could not be ended by signing out. The browser's cookie holds
 * only a random 256-bit id; the file is named by its SHA-256, so the directory's listing names no usable cookie.
 * Writes are a write to a temporary file and a rename: a reader in another process sees the old record or the new.
 */
export class SessionStore {
  private sweptAt = 0;

  constructor(
    private readonly dir: string,
    private readonly times: SessionTimes,
    private readonly now: () => number = Date.now,
  ) {}

  /** A session's absolute lifetime: its cookie's Max-Age. */
  get maxMs(): number {
    return this.times.maxMs;
  }

  private async ready(): Promise<void> {
    await mkdir(join(this.dir, 'logins'), { recursive: true, mode: 0o700 });
  }

  private async write(path: string, value: unknown): Promise<void> {
    await this.ready();
    const tmp = `${path}.${token().slice(0, 8)}.tmp`;
    await writeFile(tmp, JSON.stringify(value), { mode: 0o600 });
    await rename(tmp, path);
  }

  private async read<T>(path: string): Promise<T | undefined> {
    try {
      return JSON.parse(await readFile(path, 'utf8')) as T;
    } catch {
      return undefined;
    }
  }

  /** A new session; returns the cookie's value (shown to nobody but the browser). */
  async create(principal: Principal, idToken?: string): Promise<{ cookie: string; record: SessionRecord }> {
    await this.sweep();
    const cookie = token();
    const at = this.now();
    const record: SessionRecord = { principal, csrf: token(), createdAt: at, seenAt: at, ...(idToken ? { idToken } : {}) };
    await this.write(join(this.dir, fileOf(cookie)), record);
    return { cookie, record };
  }

  /** The live session a cookie names, or undefined (unknown, signed out, idle too long, or past its absolute end). */
  async get(cookie: string): Promise<SessionRecord | undefined> {
    const path = join(this.dir, fileOf(cookie));
    const record = await this.read<SessionRecord>(path);
    if (!record) return undefined;
    const at = this.now();
    if (at - record.seenAt > this.times.idleMs || at - record.createdAt > this.times.maxMs) {
      await rm(path, { force: true });
      return undefined;
    }
    if (at - record.seenAt > TOUCH_EVERY_MS) {
      record.seenAt = at;
      await this.write(path, record).catch(() => undefined);
    }
    return record;
  }

  /**
   * Deletes what has expired and was never asked for again (a get() deletes what it finds expired). At most every
   * SWEEP_EVERY_MS per process; a record another process is writing at that moment is skipped, not lost.
   */
  private async sweep(): Promise<void> {
    const at = this.now();
    if (at - this.sweptAt < SWEEP_EVERY_MS) return;
    this.sweptAt = at;
    await this.ready();
    const expired = async (path: string, isOver: (r: SessionRecord & PendingLogin) => boolean) => {
      const record = await this.read<SessionRecord & PendingLogin>(path);
      if (record && isOver(record)) await rm(path, { force: true });
    };
    for (const name of await readdir(this.dir)) {
      if (/^[0-9a-f]{64}$/.test(name)) await expired(join(this.dir, name), (r) => at - r.seenAt > this.times.idleMs || at - r.createdAt > this.times.maxMs);
    }
    for (const name of await readdir(join(this.dir, 'logins'))) {
      if (/^[0-9a-f]{64}$/.test(name)) await expired(join(this.dir, 'logins', name), (r) => at - r.createdAt > LOGIN_TTL_MS);
    }
  }

  async remove(cookie: string): Promise<SessionRecord | undefined> {
    const path = join(this.dir, fileOf(cookie));
    const record = await this.read<SessionRecord>(path);
    await rm(path, { force: true });
    return record;
  }

  /** Remembers a sign-in under way by its state; returns the state. */
  async startLogin(login: Omit<PendingLogin, 'createdAt'>): Promise<string> {
    const state = token();
    await this.write(join(this.dir, 'logins', fileOf(state)), { ...login, createdAt: this.now() });
    return state;
  }

  /**
   * The sign-in a state names, taken once: the record is renamed away before it is read, so of two callbacks with the
   * same state (a replay, in this process or another) only one finds it.
   */
  async takeLogin(state: string): Promise<PendingLogin | undefined> {
    const path = join(this.dir, 'logins', fileOf(state));
    const taken = `${path}.${token().slice(0, 8)}.taken`;
    try {
      await rename(path, taken);
    } catch {
      return undefined;
    }
    const login = await this.read<PendingLogin>(taken);
    await rm(taken, { force: true });
    if (!login || this.now() - login.createdAt > LOGIN_TTL_MS) return undefined;
    return login;
  }
}
