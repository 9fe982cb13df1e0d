import { closeSync, mkdirSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { StorageSeed } from './seed';

/**
 * The files of a file-based storage (pve-storage's directory plugin layout): `import/` for disk images to import,
 * `template/iso/` and `template/cache/` for ISOs and container templates. They are real files on this machine —
 * `download-url` writes them, `import-from` reads them — under the directory the simulator's `storageDir` names
 * (one per node for a local storage, one for the cluster for a shared one). What PVE would call their path is the
 * storage's mount point (`/var/lib/vz` for `local`, `/mnt/pve/<id>` otherwise): it appears in task logs and errors.
 */
export type FileContent = 'import' | 'iso' | 'vztmpl';

/** Plugins with a `path` (pve-storage: dir, nfs, cephfs, …): the only ones `download-url` may write to. */
const FILE_BASED = new Set<StorageSeed['type']>(['dir', 'nfs', 'cephfs']);

export function isFileBased(s: StorageSeed): boolean {
  return FILE_BASED.has(s.type);
}

const SUBDIR: Record<FileContent, string> = { import: 'import', iso: 'template/iso', vztmpl: 'template/cache' };

/**
 * Names a listing shows per content (pve-storage `Storage.pm`: `$ISO_EXT_RE_0`, `$VZTMPL_EXT_RE_1`,
 * `$SAFE_CHAR_CLASS_RE` + `$IMPORT_EXT_RE_1`); a download's temporary file (`<name>.tmp_dwnl.<pid>`) matches none.
 */
const LISTED: Record<FileContent, RegExp> = {
  import: /^[a-zA-Z0-9\-.+=_]+\.(ova|ovf|qcow2|raw|vmdk)$/i,
  iso: /^[^/]+\.(?:iso|img)$/i,
  vztmpl: /^[^/]+\.(?:tar|tar\.(?:gz|xz|zst|bz2))$/i,
};

/** What a download may be called (`$UPLOAD_IMPORT_EXT_RE_1` for import; the listing patterns for the others). */
export const DOWNLOAD_NAME: Record<FileContent, RegExp> = {
  import: /[a-zA-Z0-9\-.+=_]+\.(ova|qcow2|raw|vmdk)$/,
  iso: /[^/]+\.(?:iso|img)$/i,
  vztmpl: /[^/]+\.(?:tar(?!\.)|tar\.(?:gz|xz|zst|bz2))$/i,
};

/** `PVE::Storage::normalize_content_filename`: the last path component, every other character `_`. */
export function normalizeContentFilename(filename: string): string {
  return filename
    .replace(/\n$/, '')
    .replace(/^.*[/\\]/, '')
    .replace(/[^a-zA-Z0-9_.-]/g, '_');
}

export class StorageFiles {
  constructor(private readonly storageDir: (storage: string, node: string | undefined) => string) {}

  /** Where this storage's `<content>` files are on this machine, as `node` sees them. */
  dir(s: StorageSeed, node: string, content: FileContent): string {
    const dir = join(this.storageDir(s.id, s.shared ? undefined : node), SUBDIR[content]);
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  /** The same directory as PVE names it (task logs, error texts). */
  pvePath(s: StorageSeed, content: FileContent): string {
    return `${s.id === 'local' ? '/var/lib/vz' : `/mnt/pve/${s.id}`}/${SUBDIR[content]}`;
  }

  /** `get_subdir_files`: the listed files of one content type, with their size and ctime. */
  list(s: StorageSeed, node: string, content: FileContent): { name: string; size: number; ctime: number; format: string }[] {
    const dir = this.dir(s, node, content);
    return readdirSync(dir).flatMap((name) => {
      const m = LISTED[content].exec(name);
      if (!m) return [];
      try {
        const st = statSync(join(dir, name));
        if (!st.isFile()) return [];
        return [{ name, size: st.size, ctime: Math.floor(st.ctimeMs / 1000), format: content === 'import' ? m[1]!.toLowerCase() : content === 'iso' ? 'iso' : vztmplFormat(name) }];
      } catch {
        return [];
      }
    });
  }
}

function vztmplFormat(name: string): string {
  const ext = /\.tar(?:\.(gz|xz|zst|bz2))?$/i.exec(name)?.[1];
  return ext ? `t${ext}` : 'tar';
}

/** A disk image as `qemu-img info` sees it, for the checks PVE makes of an untrusted image (`file_size_info`). */
export interface ImageInfo {
  virtualSize: number;
  backingFile?: string;
  dataFile?: boolean;
}

/**
 * Reads an image's header as `qemu-img info -f <format>` would: a qcow2's virtual size from its header's size
 * field (big-endian u64 at byte 24), its backing file name and whether it has an external data file (incompatible
 * feature bit 2, version 3); a vmdk's capacity in sectors (little-endian u64 at byte 12); a raw file's length.
 * Throws qemu-img's own text when the bytes are not of that format.
 */
export function inspectImage(path: string, format: string): ImageInfo {
  const size = statSync(path).size;
  if (format === 'raw') return { virtualSize: size };
  const header = Buffer.alloc(512);
  const fd = openSync(path, 'r');
  let got: number;
  try {
    got = readSync(fd, header, 0, header.length, 0);
  } finally {
    closeSync(fd);
  }
  if (format === 'qcow2') {
    if (got < 72 || header.readUInt32BE(0) !== 0x514649fb) throw new Error(`qemu-img: Could not open '${path}': Image is not in qcow2 format`);
    const version = header.readUInt32BE(4);
    const backingOffset = Number(header.readBigUInt64BE(8));
    const backingLength = header.readUInt32BE(16);
    const info: ImageInfo = { virtualSize: Number(header.readBigUInt64BE(24)) };
    if (backingOffset > 0 && backingLength > 0) {
      const name = Buffer.alloc(Math.min(backingLength, 1023));
      const fd2 = openSync(path, 'r');
      try {
        readSync(fd2, name, 0, name.length, backingOffset);
      } finally {
        closeSync(fd2);
      }
      info.backingFile = name.toString('utf8');
    }
    if (version >= 3 && got >= 80 && (header.readBigUInt64BE(72) & 4n) !== 0n) info.dataFile = true;
    return info;
  }
  if (format === 'vmdk') {
    if (got < 20 || header.toString('latin1', 0, 4) !== 'KDMV') throw new Error(`qemu-img: Could not open '${path}': Invalid footer`);
    return { virtualSize: Number(header.readBigUInt64LE(12)) * 512 };
  }
  throw new Error(`qemu-img: Could not open '${path}': Unknown driver '${format}'`);
}

/** How qemu-server writes a disk's `size=` (`PVE::QemuServer::Drive` via `format_size`): the largest exact unit. */
export function formatDiskSize(bytes: number): string {
  for (const [unit, factor] of [
    ['T', 1024 ** 4],
    ['G', 1024 ** 3],
    ['M', 1024 ** 2],
    ['K', 1024],
  ] as const) {
    if (bytes >= factor && bytes % factor === 0) return `${bytes / factor}${unit}`;
  }
  return String(bytes);
}
