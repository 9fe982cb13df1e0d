import { randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import { Client, utils, type SFTPWrapper } from 'ssh2';
import { z } from 'zod';
import { sftpDefaultTimeoutMs } from './defaults';
import { fingerprintOfBlob, keyTypeOfBlob } from './keys';
import { SftpError, type SftpErrorKind } from './SftpError';

const STATUS = utils.sftp.STATUS_CODE;
/** Cloud-init user-data carries secrets (NetBird setup keys, password hashes): root-only unless told otherwise. */
const DEFAULT_MODE = 0o600;

const targetSchema = z.object({
  host: z.string().min(1),
  port: z.number().int().min(1).max(65_535),
  username: z.string().min(1),
  privateKey: z.string().min(1),
  hostKeyFingerprint: z.string().regex(/^SHA256:[A-Za-z0-9+/]{43}$/, "expected 'SHA256:' and 43 base64 characters, as printed on the node by " + '`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`'),
  timeoutMs: z.number().int().positive().optional(),
});

export type SftpTarget = z.input<typeof targetSchema>;

interface Session {
  conn: Client;
  sftp: SFTPWrapper;
  /** False once the transport closed, from either side. */
  open: boolean;
}

/**
 * SFTP to one node, the host key pinned (there is no accept-any mode).
 *
 * Connection lifetime: one lazily opened connection per instance, reused by that instance's calls and ended by
 * `close()`. An activity creates a client for its target, does its one to three calls and closes it in `finally`.
 * A process-wide cache across activities was rejected: a build touches a node's snippets once or twice, so it would
 * save one ~10 ms handshake while adding idle sockets that outlive node reboots and host-key rotations and that
 * somebody must reap. A connection that failed (timeout, lost transport) is dropped and the next call reconnects.
 *
 * Every public call is bounded by `timeoutMs` (default 15 s) from start to end, handshake included.
 */
export class SftpClient {
  readonly #target: z.output<typeof targetSchema>;
  readonly #timeoutMs: number;
  #session: Promise<Session> | undefined;
  #closed = false;

  constructor(target: SftpTarget) {
    const parsed = targetSchema.safeParse(target);
    if (!parsed.success) {
      const where = `${String(target.host)}:${String(target.port)}`;
      throw new Error(`invalid SFTP target ${where}: ${z.prettifyError(parsed.error)}`);
    }
    this.#target = parsed.data;
    this.#timeoutMs = parsed.data.timeoutMs ?? sftpDefaultTimeoutMs;
  }

  /**
   * Writes `content` to `remotePath` atomically: into a temporary file beside it, then renamed over it, so a reader
   * (Proxmox starting the VM) sees the old file or the new one, never half of one. Repeating it is harmless.
   * `mode` (default 0600) applies to the new file, subject to the server's umask.
   */
  async upload(remotePath: string, content: string | Buffer, opts: { mode?: number } = {}): Promise<void> {
    const path = absolutePath(remotePath);
    const data = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
    const temp = posix.join(posix.dirname(path), `.${posix.basename(path)}.${randomBytes(6).toString('hex')}.part`);
    await this.#run('upload', path, async (sftp) => {
      try {
        await sftpCall<void>((cb) => sftp.writeFile(temp, data, { mode: opts.mode ?? DEFAULT_MODE }, cb));
        await replaceFile(sftp, temp, path);
      } catch (error) {
        // Best effort: a dead connection leaves the `.part` file behind, and the next upload does not need it.
        await sftpCall<void>((cb) => sftp.unlink(temp, cb)).catch(() => undefined);
        throw error;
      }
    });
  }

  /** The file's content, or undefined when there is no such file. */
  async read(remotePath: string): Promise<Buffer | undefined> {
    const path = absolutePath(remotePath);
    return this.#run('read', path, async (sftp) => {
      try {
        return await sftpCall<Buffer>((cb) => sftp.readFile(path, cb));
      } catch (error) {
        if (statusOf(error) === STATUS.NO_SUCH_FILE) return undefined;
        throw error;
      }
    });
  }

  /** Removes the file; a file that is already gone is not an error (`'absent'`), so a retried cleanup succeeds. */
  async remove(remotePath: string): Promise<'removed' | 'absent'> {
    const path = absolutePath(remotePath);
    return this.#run('remove', path, async (sftp) => {
      try {
        await sftpCall<void>((cb) => sftp.unlink(path, cb));
        return 'removed' as const;
      } catch (error) {
        if (statusOf(error) === STATUS.NO_SUCH_FILE) return 'absent' as const;
        throw error;
      }
    });
  }

  /** Ends the connection, if one is open. The client cannot be used afterwards. */
  async close(): Promise<void> {
    this.#closed = true;
    const pending = this.#session;
    this.#session = undefined;
    if (pending === undefined) return;
    const session = await pending.catch(() => undefined);
    if (session?.open) await endConnection(session.conn, this.#timeoutMs);
  }

  async #run<T>(operation: string, path: string, body: (sftp: SFTPWrapper) => Promise<T>): Promise<T> {
    if (this.#closed) throw new Error(`SftpClient for ${this.#where()} used after close()`);
    const deadline = Date.now() + this.#timeoutMs;
    const session = await this.#open();
    const remaining = Math.max(1, deadline - Date.now());
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // The server may still answer later; a fresh connection is the only way to know where we stand.
        this.#drop(session);
        const message = `${operation} ${path} on ${this.#where()} took longer than ${this.#timeoutMs} ms`;
        reject(this.#error('timeout', true, message, path));
      }, remaining);
    });
    try {
      return await Promise.race([body(session.sftp), timeout]);
    } catch (error) {
      if (error instanceof SftpError) throw error;
      const mapped = this.#operationError(operation, path, error);
      if (statusOf(error) === undefined) this.#drop(session);
      throw mapped;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The open session, connecting when there is none or the last one was closed by the other side. */
  async #open(): Promise<Session> {
    const existing = this.#session;
    if (existing !== undefined) {
      const session = await existing.catch(() => undefined);
      if (session?.open) return session;
      if (this.#session === existing) this.#session = undefined;
    }
    const pending = this.#session ?? (this.#session = this.#connect());
    try {
      return await pending;
    } catch (error) {
      if (this.#session === pending) this.#session = undefined;
      throw error;
    }
  }

  #drop(session: Session): void {
    session.open = false;
    session.conn.destroy();
  }

  #connect(): Promise<Session> {
    const { host, port, username, privateKey, hostKeyFingerprint } = this.#target;
    return new Promise<Session>((resolve, reject) => {
      const conn = new Client();
      let presented: { fingerprint: string; type: string } | undefined;
      let settled = false;
      const fail = (error: SftpError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        conn.destroy();
        reject(error);
      };
      const timer = setTimeout(() => fail(this.#error('timeout', true, `no SSH session with ${this.#where()} within ${this.#timeoutMs} ms`)), this.#timeoutMs);
      // Registered for the whole life of the connection: an 'error' event without a listener would crash the process.
      conn.on('error', (error) => fail(this.#connectError(error, presented)));
      let session: Session | undefined;
      conn.on('close', () => {
        if (session !== undefined) session.open = false;
        fail(this.#error('connect', true, `${this.#where()} closed the connection before the SFTP session was ready`));
      });
      conn.on('ready', () => {
        conn.sftp((error, sftp) => {
          if (error) {
            fail(this.#error('io', false, `${this.#where()} refused the SFTP subsystem (${error.message}): ` + `check 'Subsystem sftp' in the node's sshd_config`, undefined, error));
            return;
          }
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          session = { conn, sftp, open: true };
          resolve(session);
        });
      });
      conn.connect({
        host,
        port,
        username,
        privateKey,
        readyTimeout: this.#timeoutMs,
        hostVerifier: (blob: Buffer) => {
          const fingerprint = fingerprintOfBlob(blob);
          if (fingerprint === hostKeyFingerprint) return true;
          presented = { fingerprint, type: keyTypeOfBlob(blob) };
          return false;
        },
      });
      // Without it, Nagle's algorithm holds each small handshake and SFTP packet until the server's delayed ACK
      // (40 ms on Linux): a connection and one upload took half a second, almost all of it waiting.
      conn.setNoDelay(true);
    });
  }

  #connectError(error: Error & { level?: string; code?: unknown }, presented?: { fingerprint: string; type: string }): SftpError {
    const where = this.#where();
    if (presented !== undefined) {
      return this.#error(
        'host-key-mismatch',
        false,
        `host key of ${where} does not match the pinned fingerprint: expected ${this.#target.hostKeyFingerprint}, ` +
          `the server presented ${presented.type} ${presented.fingerprint}. Nothing was sent. If the node was ` +
          `reinstalled or its keys rotated, verify the key on the node itself (ssh-keygen -lf ` +
          `/etc/ssh/ssh_host_ed25519_key.pub) and update the pinned fingerprint; otherwise treat it as a possible ` +
          `man-in-the-middle.`,
        undefined,
        error,
      );
    }
    switch (error.level) {
      case 'client-authentication':
        return this.#error('auth', false, `${where} refused public-key login as '${this.#target.username}': add pveflow's public key to that ` + `user's ~/.ssh/authorized_keys on the node`, undefined, error);
      case 'client-timeout':
        return this.#error('timeout', true, `SSH handshake with ${where} timed out`, undefined, error);
      case 'handshake':
        return this.#error('connect', false, `SSH handshake with ${where} failed: ${error.message}`, undefined, error);
      default: {
        const code = typeof error.code === 'string' ? ` (${error.code})` : '';
        return this.#error('connect', true, `cannot reach SSH on ${where}${code}: ${error.message}; ` + 'check that the node is up and sshd listens on that port', undefined, error);
      }
    }
  }

  #operationError(operation: string, path: string, error: unknown): SftpError {
    const where = this.#where();
    const message = error instanceof Error ? error.message : String(error);
    switch (statusOf(error)) {
      case STATUS.PERMISSION_DENIED:
        return this.#error('permission', false, `${operation} ${path} on ${where} refused: permission denied for '${this.#target.username}'`, path, error);
      case STATUS.NO_SUCH_FILE:
        return this.#error('io', false, `${operation} ${path} on ${where} failed: ${posix.dirname(path)} does not exist. On Proxmox, enable the ` + `'Snippets' content type on the storage that owns it`, path, error);
      case STATUS.OP_UNSUPPORTED:
      case STATUS.BAD_MESSAGE:
        return this.#error('io', false, `${operation} ${path} on ${where}: refused (${message})`, path, error);
      case STATUS.FAILURE:
        return this.#error('io', true, `${operation} ${path} on ${where} failed (${message}); disk full?`, path, error);
      default:
        return this.#error('io', true, `${operation} ${path} on ${where} failed: ${message}`, path, error);
    }
  }

  #error(kind: SftpErrorKind, retryable: boolean, message: string, path?: string, cause?: unknown): SftpError {
    const { host, port } = this.#target;
    return new SftpError(message, {
      kind,
      retryable,
      host,
      port,
      ...(path === undefined ? {} : { path }),
      ...(cause === undefined ? {} : { cause }),
    });
  }

  #where(): string {
    return `${this.#target.host}:${this.#target.port}`;
  }
}

function absolutePath(remotePath: string): string {
  const normalised = posix.normalize(remotePath);
  if (!posix.isAbsolute(normalised) || normalised.endsWith('/')) {
    throw new Error(`remote path must be an absolute file path, got '${remotePath}'`);
  }
  return normalised;
}

/**
 * Moves `from` over `to`. OpenSSH offers POSIX rename (atomic replace) as an extension; plain SFTPv3 RENAME refuses
 * to overwrite, so without the extension the old file is removed first — a short window without the file, never a
 * partly written one.
 */
async function replaceFile(sftp: SFTPWrapper, from: string, to: string): Promise<void> {
  const posixRenamed = await new Promise<boolean>((resolve, reject) => {
    try {
      sftp.ext_openssh_rename(from, to, (error) => (error ? reject(error) : resolve(true)));
    } catch {
      // ssh2 throws synchronously when the server did not advertise posix-rename@openssh.com.
      resolve(false);
    }
  });
  if (posixRenamed) return;
  try {
    await sftpCall<void>((cb) => sftp.rename(from, to, cb));
  } catch (error) {
    if (statusOf(error) !== STATUS.FAILURE) throw error;
    await sftpCall<void>((cb) => sftp.unlink(to, cb)).catch((unlinkError: unknown) => {
      if (statusOf(unlinkError) !== STATUS.NO_SUCH_FILE) throw unlinkError;
    });
    await sftpCall<void>((cb) => sftp.rename(from, to, cb));
  }
}

function sftpCall<T>(start: (callback: (error?: Error | null, value?: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    start((error, value) => (error ? reject(error) : resolve(value as T)));
  });
}

/** The SFTP status code ssh2 puts on errors that came from the server; undefined for transport failures. */
function statusOf(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

function endConnection(conn: Client, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      conn.destroy();
      resolve();
    }, timeoutMs);
    conn.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    conn.end();
  });
}
