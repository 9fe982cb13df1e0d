import { constants, type Stats } from 'node:fs';
import { link, lstat, mkdir, open, readdir, rename, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import { utils, type Attributes, type FileEntry, type SFTPWrapper } from 'ssh2';
import { normaliseRemotePath, type MountTable, type MountedPath } from './mounts';

const STATUS = utils.sftp.STATUS_CODE;
const OPEN_MODE = utils.sftp.OPEN_MODE;
/** Largest READ answered at once; clients ask for 32 KiB–256 KiB and accept short reads. */
const MAX_READ = 256 * 1024;

/** A refusal with the SFTP status it stands for, raised by the handlers and turned into a STATUS reply. */
class SftpStatus extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

type OpenHandle = { kind: 'file'; path: MountedPath; file: FileHandle } | { kind: 'dir'; path: MountedPath; entries: FileEntry[] | undefined };

/**
 * Answers one SFTP session from the mounted directories, the way OpenSSH's sftp-server answers from the disk: the
 * same status codes (NO_SUCH_FILE for a missing file, FAILURE for a rename onto an existing name, EOF at the end of
 * a file or listing), and PERMISSION_DENIED for anything outside the mounts.
 */
export function serveSftp(sftp: SFTPWrapper, mounts: MountTable): void {
  const handles = new Map<string, OpenHandle>();
  let nextHandle = 0;

  const newHandle = (entry: OpenHandle): Buffer => {
    const id = Buffer.alloc(4);
    id.writeUInt32BE(nextHandle++ >>> 0);
    handles.set(id.toString('hex'), entry);
    return id;
  };
  const handleOf = (id: Buffer): OpenHandle => {
    const entry = handles.get(id.toString('hex'));
    if (entry === undefined) throw new SftpStatus(STATUS.FAILURE, 'invalid handle');
    return entry;
  };
  const fileOf = (id: Buffer): FileHandle => {
    const entry = handleOf(id);
    if (entry.kind !== 'file') throw new SftpStatus(STATUS.FAILURE, 'handle is a directory');
    return entry.file;
  };
  const mounted = (remotePath: string): MountedPath => {
    const path = mounts.resolve(remotePath);
    if (path === undefined) throw new SftpStatus(STATUS.PERMISSION_DENIED, `permission denied: ${remotePath}`);
    return path;
  };

  /** Runs a request and turns whatever it throws into the status reply OpenSSH would send. */
  const answer = (reqId: number, work: () => Promise<void>): void => {
    work().catch((error: unknown) => {
      const { code, message } = statusFor(error);
      sftp.status(reqId, code, message);
    });
  };
  const ok = (reqId: number): void => {
    sftp.status(reqId, STATUS.OK);
  };

  sftp.on('REALPATH', (reqId, remotePath) =>
    answer(reqId, async () => {
      // A pure name operation, as in sftp-server: it says where a path points without touching the disk.
      const path = normaliseRemotePath(remotePath);
      sftp.name(reqId, [{ filename: path, longname: path, attrs: {} as Attributes }]);
    }),
  );

  sftp.on('OPEN', (reqId, remotePath, flags, attrs) =>
    answer(reqId, async () => {
      const path = mounted(remotePath);
      const mode = (attrs as Partial<Attributes>).mode ?? 0o666;
      const file = await open(path.local, toFsFlags(flags), mode & 0o7777);
      sftp.handle(reqId, newHandle({ kind: 'file', path, file }));
    }),
  );

  sftp.on('READ', (reqId, id, offset, length) =>
    answer(reqId, async () => {
      const buffer = Buffer.alloc(Math.min(length, MAX_READ));
      const { bytesRead } = await fileOf(id).read(buffer, 0, buffer.length, offset);
      if (bytesRead === 0) sftp.status(reqId, STATUS.EOF);
      else sftp.data(reqId, buffer.subarray(0, bytesRead));
    }),
  );

  sftp.on('WRITE', (reqId, id, offset, data) =>
    answer(reqId, async () => {
      await fileOf(id).write(data, 0, data.length, offset);
      ok(reqId);
    }),
  );

  sftp.on('FSTAT', (reqId, id) =>
    answer(reqId, async () => {
      sftp.attrs(reqId, toAttributes(await fileOf(id).stat()));
    }),
  );

  sftp.on('FSETSTAT', (reqId, id, attrs) =>
    answer(reqId, async () => {
      const file = fileOf(id);
      await applyAttributes(attrs, {
        chmod: (mode) => file.chmod(mode),
        chown: (uid, gid) => file.chown(uid, gid),
        truncate: (size) => file.truncate(size),
        utimes: (atime, mtime) => file.utimes(atime, mtime),
      });
      ok(reqId);
    }),
  );

  sftp.on('SETSTAT', (reqId, remotePath, attrs) =>
    answer(reqId, async () => {
      const { local } = mounted(remotePath);
      const file = await open(local, constants.O_RDONLY);
      try {
        await applyAttributes(attrs, {
          chmod: (mode) => file.chmod(mode),
          chown: (uid, gid) => file.chown(uid, gid),
          truncate: async (size) => {
            const writable = await open(local, constants.O_WRONLY);
            await writable.truncate(size).finally(() => writable.close());
          },
          utimes: (atime, mtime) => file.utimes(atime, mtime),
        });
      } finally {
        await file.close();
      }
      ok(reqId);
    }),
  );

  sftp.on('CLOSE', (reqId, id) =>
    answer(reqId, async () => {
      const entry = handleOf(id);
      handles.delete(id.toString('hex'));
      if (entry.kind === 'file') await entry.file.close();
      ok(reqId);
    }),
  );

  sftp.on('OPENDIR', (reqId, remotePath) =>
    answer(reqId, async () => {
      const path = mounted(remotePath);
      if (!(await stat(path.local)).isDirectory()) {
        throw new SftpStatus(STATUS.FAILURE, `not a directory: ${path.remote}`);
      }
      sftp.handle(reqId, newHandle({ kind: 'dir', path, entries: undefined }));
    }),
  );

  sftp.on('READDIR', (reqId, id) =>
    answer(reqId, async () => {
      const entry = handleOf(id);
      if (entry.kind !== 'dir') throw new SftpStatus(STATUS.FAILURE, 'handle is not a directory');
      // The whole listing goes out in the first answer; the next READDIR gets EOF, as the protocol allows.
      if (entry.entries !== undefined) {
        sftp.status(reqId, STATUS.EOF);
        return;
      }
      entry.entries = await listDirectory(entry.path.local);
      sftp.name(reqId, entry.entries);
    }),
  );

  sftp.on('STAT', (reqId, remotePath) =>
    answer(reqId, async () => {
      sftp.attrs(reqId, toAttributes(await stat(mounted(remotePath).local)));
    }),
  );

  sftp.on('LSTAT', (reqId, remotePath) =>
    answer(reqId, async () => {
      sftp.attrs(reqId, toAttributes(await lstat(mounted(remotePath).local)));
    }),
  );

  sftp.on('REMOVE', (reqId, remotePath) =>
    answer(reqId, async () => {
      const path = mounted(remotePath);
      if (path.isMountPoint) throw new SftpStatus(STATUS.PERMISSION_DENIED, `permission denied: ${path.remote}`);
      await unlink(path.local);
      ok(reqId);
    }),
  );

  sftp.on('MKDIR', (reqId, remotePath, attrs) =>
    answer(reqId, async () => {
      const path = mounted(remotePath);
      await mkdir(path.local, { mode: ((attrs as Partial<Attributes>).mode ?? 0o777) & 0o7777 });
      ok(reqId);
    }),
  );

  sftp.on('RMDIR', (reqId, remotePath) =>
    answer(reqId, async () => {
      const path = mounted(remotePath);
      if (path.isMountPoint) throw new SftpStatus(STATUS.PERMISSION_DENIED, `permission denied: ${path.remote}`);
      await rmdir(path.local);
      ok(reqId);
    }),
  );

  sftp.on('RENAME', (reqId, fromPath, toPath) =>
    answer(reqId, async () => {
      const from = mounted(fromPath);
      const to = mounted(toPath);
      if (from.isMountPoint || to.isMountPoint) {
        const mountPoint = from.isMountPoint ? from.remote : to.remote;
        throw new SftpStatus(STATUS.PERMISSION_DENIED, `permission denied: ${mountPoint}`);
      }
      await renameWithoutReplacing(from.local, to.local);
      ok(reqId);
    }),
  );

  // A client that disconnects with files open must not leak their descriptors.
  const closeAll = (): void => {
    for (const entry of handles.values()) if (entry.kind === 'file') void entry.file.close().catch(() => undefined);
    handles.clear();
  };
  sftp.on('end', closeAll);
  sftp.on('close', closeAll);
}

/**
 * SFTPv3 RENAME never replaces the target. Like sftp-server, a file is hard-linked to its new name and then
 * unlinked, so an existing target makes it fail (EEXIST → FAILURE) instead of being overwritten.
 */
async function renameWithoutReplacing(from: string, to: string): Promise<void> {
  if ((await lstat(from)).isFile()) {
    await link(from, to);
    await unlink(from);
    return;
  }
  const existing = await lstat(to).catch(() => undefined);
  if (existing !== undefined) throw new SftpStatus(STATUS.FAILURE, 'failure: target exists');
  await rename(from, to);
}

async function listDirectory(local: string): Promise<FileEntry[]> {
  const names = ['.', '..', ...(await readdir(local))];
  const entries: FileEntry[] = [];
  for (const filename of names) {
    // A file removed between readdir and lstat is simply no longer listed.
    const stats = await lstat(`${local}/${filename}`).catch(() => undefined);
    if (stats === undefined) continue;
    entries.push({ filename, longname: longName(filename, stats), attrs: toAttributes(stats) });
  }
  return entries;
}

function toFsFlags(flags: number): number {
  const read = (flags & OPEN_MODE.READ) !== 0;
  const write = (flags & OPEN_MODE.WRITE) !== 0;
  let fsFlags = read && write ? constants.O_RDWR : write ? constants.O_WRONLY : constants.O_RDONLY;
  if (flags & OPEN_MODE.APPEND) fsFlags |= constants.O_APPEND;
  if (flags & OPEN_MODE.CREAT) fsFlags |= constants.O_CREAT;
  if (flags & OPEN_MODE.TRUNC) fsFlags |= constants.O_TRUNC;
  if (flags & OPEN_MODE.EXCL) fsFlags |= constants.O_EXCL;
  return fsFlags;
}

interface AttributeTarget {
  chmod(mode: number): Promise<void>;
  chown(uid: number, gid: number): Promise<void>;
  truncate(size: number): Promise<void>;
  utimes(atime: number, mtime: number): Promise<void>;
}

/** ssh2 hands over only the attributes the client sent; the others are absent. */
async function applyAttributes(attrs: Attributes, target: AttributeTarget): Promise<void> {
  const { mode, uid, gid, size, atime, mtime } = attrs as Partial<Attributes>;
  if (size !== undefined) await target.truncate(size);
  if (uid !== undefined && gid !== undefined) await target.chown(uid, gid);
  if (mode !== undefined) await target.chmod(mode & 0o7777);
  if (atime !== undefined && mtime !== undefined) await target.utimes(atime, mtime);
}

function toAttributes(stats: Stats): Attributes {
  return {
    mode: stats.mode,
    uid: stats.uid,
    gid: stats.gid,
    size: stats.size,
    atime: Math.floor(stats.atimeMs / 1000),
    mtime: Math.floor(stats.mtimeMs / 1000),
  };
}

/** An `ls -l` line, which SFTPv3 clients show to people as is. */
function longName(filename: string, stats: Stats): string {
  const type = stats.isDirectory() ? 'd' : stats.isSymbolicLink() ? 'l' : '-';
  const bits = 'rwxrwxrwx'
    .split('')
    .map((letter, i) => (stats.mode & (0o400 >> i) ? letter : '-'))
    .join('');
  const date = stats.mtime.toISOString().slice(0, 16).replace('T', ' ');
  return `${type}${bits} ${stats.nlink} ${stats.uid} ${stats.gid} ${stats.size} ${date} ${filename}`;
}

/** The status OpenSSH's sftp-server sends for a failed system call (its errno_to_portable). */
function statusFor(error: unknown): { code: number; message: string } {
  if (error instanceof SftpStatus) return { code: error.code, message: error.message };
  const errno = (error as NodeJS.ErrnoException | null)?.code;
  switch (errno) {
    case 'ENOENT':
    case 'ENOTDIR':
    case 'EBADF':
    case 'ELOOP':
      return { code: STATUS.NO_SUCH_FILE, message: 'No such file' };
    case 'EPERM':
    case 'EACCES':
    case 'EFAULT':
      return { code: STATUS.PERMISSION_DENIED, message: 'Permission denied' };
    case 'ENAMETOOLONG':
    case 'EINVAL':
      return { code: STATUS.BAD_MESSAGE, message: 'Bad message' };
    default:
      return { code: STATUS.FAILURE, message: errno === undefined ? 'Failure' : `Failure (${errno})` };
  }
}
