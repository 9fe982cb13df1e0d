import { isAbsolute, join, posix, resolve } from 'node:path';

/** A remote path that falls inside a mount, with the local file it stands for. */
export interface MountedPath {
  remote: string;
  local: string;
  /** The mount point itself: it can be listed and written into, but not removed or renamed. */
  isMountPoint: boolean;
}

/**
 * The simulated node's file system: only the mounted directories exist for the client; everything else is refused
 * as if sshd's user lacked permission. Paths are normalised (`..` resolved against `/`) before they are matched, so
 * `/var/lib/vz/snippets/../../../etc/passwd` is `/etc/passwd` and refused.
 */
export class MountTable {
  readonly #mounts: Array<{ remote: string; local: string }>;

  constructor(mounts: Record<string, string>) {
    this.#mounts = Object.entries(mounts)
      .map(([remote, local]) => {
        if (!posix.isAbsolute(remote)) throw new Error(`SFTP mount '${remote}' must be an absolute remote path`);
        if (!isAbsolute(local)) {
          throw new Error(`SFTP mount '${remote}' must map to an absolute local directory, got '${local}'`);
        }
        return { remote: normaliseRemotePath(remote), local: resolve(local) };
      })
      // Longest first, so a mount nested in another wins.
      .sort((a, b) => b.remote.length - a.remote.length);
    if (this.#mounts.length === 0) throw new Error('an SFTP server needs at least one mount');
  }

  get localDirectories(): string[] {
    return this.#mounts.map((m) => m.local);
  }

  /** The local file behind a remote path, or undefined when the path is outside every mount. */
  resolve(remotePath: string): MountedPath | undefined {
    const remote = normaliseRemotePath(remotePath);
    for (const mount of this.#mounts) {
      if (remote === mount.remote) return { remote, local: mount.local, isMountPoint: true };
      const prefix = mount.remote === '/' ? '/' : `${mount.remote}/`;
      if (remote.startsWith(prefix)) {
        const rest = remote.slice(prefix.length).split('/');
        return { remote, local: join(mount.local, ...rest), isMountPoint: false };
      }
    }
    return undefined;
  }
}

/** Relative paths are taken from `/` (the simulated user's home); the result has no `..`, `.` or trailing `/`. */
export function normaliseRemotePath(remotePath: string): string {
  const normalised = posix.normalize(posix.join('/', remotePath));
  return normalised.length > 1 && normalised.endsWith('/') ? normalised.slice(0, -1) : normalised;
}
