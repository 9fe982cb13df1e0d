import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { createReadStream, createWriteStream, existsSync, renameSync, rmSync, statSync, type WriteStream } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { Agent, request } from 'undici';
import type { ApiRequest, Route, SimContext } from '../context';
import { paramError, permissionError, pveDie } from '../errors';
import type { StorageSeed } from '../seed';
import { DOWNLOAD_NAME, inspectImage, isFileBased, normalizeContentFilename, type FileContent } from '../storageFiles';
import { INTERRUPTED, WorkerKilled, type TaskContext } from '../tasks';
import { parseUpid } from '../upid';

/**
 * `POST /nodes/{node}/storage/{storage}/download-url` (pve-storage `API2/Storage/Status.pm download_url`, with
 * pve-common `PVE::Tools::download_file_from_url` doing the work in a `download` task whose id is the file name).
 * The simulator really fetches the URL (tests serve files on 127.0.0.1) and writes the file under the storage's
 * directory; the task log carries what PVE's does — its own lines and the output of `wget --progress=dot:giga`
 * (with `LC_ALL=C`: ASCII quotes; blank lines dropped; wget's last stderr line becomes the error of a failed
 * download, e.g. `download failed: exit code 8` after an HTTP error, whose last line is blank).
 */
const WGET_LINE_BYTES = 32 * 1024 * 1024;
const MAX_REDIRECTS = 20;
/** What `verify-certificates=0` and `=1` connect with; requests carry their own dispatcher. */
const verifying = new Agent({ connect: { rejectUnauthorized: true } });
const insecure = new Agent({ connect: { rejectUnauthorized: false } });

function checkPermissions(req: ApiRequest, sim: SimContext): void {
  const { identity, params } = req;
  // ['and', perm /storage/{storage} Datastore.AllocateTemplate, ['or', perm / [Sys.Audit, Sys.Modify], perm /nodes/{node} Sys.AccessNetwork]]:
  // the `perm` names what failed, the `or` fails bare (reference §4.6: `or` checks give a bare message).
  sim.perms.check(identity, `/storage/${params.str('storage')}`, ['Datastore.AllocateTemplate']);
  const onRoot = sim.perms.has(identity, '/', ['Sys.Audit', 'Sys.Modify']);
  if (!onRoot && !sim.perms.has(identity, `/nodes/${params.str('node')}`, ['Sys.AccessNetwork'])) throw permissionError();
}

/** `storage_check_enabled` and the checks download_url makes before it forks its worker. */
function targetStorage(sim: SimContext, sid: string, node: string, content: FileContent): StorageSeed {
  const storage = sim.cluster.storages.get(sid);
  if (!storage) throw pveDie(`storage '${sid}' does not exist`);
  if (!sim.cluster.storageEnabledOn(storage, node)) throw pveDie(`storage '${sid}' is not available on node '${node}'`);
  if (!isFileBased(storage)) throw pveDie(`can't upload to storage type '${storage.type}', not a file based storage!`);
  if (!storage.content.includes(content)) throw pveDie(`storage '${sid}' is not configured for content-type '${content}'`);
  return storage;
}

const download: Route = {
  method: 'POST',
  path: '/nodes/{node}/storage/{storage}/download-url',
  permission: checkPermissions,
  handle: ({ identity, params }, sim) => {
    const node = params.req('node');
    const content = params.req('content') as FileContent;
    const storage = targetStorage(sim, params.req('storage'), node, content);
    const filename = normalizeContentFilename(params.req('filename'));
    const format = DOWNLOAD_NAME[content].exec(filename)?.[1]?.toLowerCase();
    if (!DOWNLOAD_NAME[content].test(filename)) throw paramError({ filename: content === 'import' ? 'invalid filename or wrong extension' : 'wrong file extension' });
    const url = params.req('url');
    const checksum = params.str('checksum');
    const algorithm = params.str('checksum-algorithm');
    const compression = params.str('compression');
    const verify = params.bool('verify-certificates') ?? true;

    return sim.tasks.start({
      node,
      type: 'download',
      id: filename,
      identity,
      interruptible: true,
      worker: async (ctx) => {
        let decompressor: string[] | undefined;
        if (compression) {
          if (content !== 'iso') throw new Error(`decompression not supported for ${content}`);
          decompressor = DECOMPRESSORS[compression];
          if (!decompressor) throw new Error('no decompression method found');
        }
        const pid = parseUpid(ctx.upid)!.pid;
        const job: Download = {
          sim,
          ctx,
          storage,
          node,
          url,
          verify,
          dir: sim.storageFiles.dir(storage, node, content),
          pveDir: sim.storageFiles.pvePath(storage, content),
          filename,
          pid,
          checksum: checksum && algorithm ? { algorithm, expected: checksum } : undefined,
          decompressor,
          validate: content === 'import' ? (path, pvePath) => assertImportable(path, pvePath, format!) : undefined,
        };
        await downloadFileFromUrl(job);
      },
    }).upid;
  },
};

/** `PVE::Storage::decompressor_info('iso', …)`: the compressions download-url knows (`KNOWN_COMPRESSION_FORMATS`). */
const DECOMPRESSORS: Record<string, string[]> = {
  gz: ['zcat'],
  lzo: ['lzop', '-d', '-c'],
  zst: ['zstd', '-q', '-d', '-c'],
  bz2: ['bzcat', '-q'],
};

/** download_url's `assert_file_validity` for import content: `file_size_info(…, $format, untrusted)`. */
function assertImportable(path: string, pvePath: string, format: string): void {
  if (format === 'ova') throw new Error('OVA downloads are not simulated');
  let info;
  try {
    info = inspectImage(path, format);
  } catch (err) {
    throw new Error((err as Error).message.replaceAll(path, pvePath), { cause: err });
  }
  if (info.dataFile) throw new Error(`${pvePath}: 'data-file' references are not allowed!`);
  if (info.backingFile) throw new Error(`backing file not allowed for untrusted image '${pvePath}'!`);
}

interface Download {
  sim: SimContext;
  ctx: TaskContext;
  storage: StorageSeed;
  node: string;
  url: string;
  verify: boolean;
  /** Where the file goes on this machine, and the same directory as PVE names it. */
  dir: string;
  pveDir: string;
  filename: string;
  /** The worker's pid: PVE's temporary files are `<dest>.tmp_dwnl.<pid>` and `<dest>.tmp_dcom.<pid>`. */
  pid: number;
  checksum?: { algorithm: string; expected: string };
  decompressor?: string[];
  validate?(path: string, pvePath: string): void;
}

/** A failed wget: its last stderr line (what PVE's `run_command(errmsg => 'download failed')` dies with). */
class WgetFailed extends Error {}

async function downloadFileFromUrl(job: Download): Promise<void> {
  const { ctx, sim, storage, node } = job;
  const dest = join(job.dir, job.filename);
  const pveDest = `${job.pveDir}/${job.filename}`;
  ctx.log(`downloading ${job.url} to ${pveDest}`);
  if (existsSync(dest)) {
    if (!job.checksum) throw new Error(`refusing to override existing file '${pveDest}'`);
    const got = await fileHash(job.checksum.algorithm, dest);
    if (got === job.checksum.expected.toLowerCase()) return ctx.log('calculating checksum of existing file...OK, got correct file already, no need to download');
    ctx.log('calculating checksum of existing file...');
    throw new Error(`checksum mismatch: got '${got}' != expect '${job.checksum.expected}', aborting`);
  }

  const tmpDownload = `${dest}.tmp_dwnl.${job.pid}`;
  const tmpDecompressed = `${dest}.tmp_dcom.${job.pid}`;
  const pveTmp = `${pveDest}.tmp_dwnl.${job.pid}`;
  /** Bytes of this download counted against the storage (files on a file-based storage take its space). */
  let held = 0;
  const release = () => {
    if (held > 0) sim.capacity.release(storage, node, held);
    held = 0;
  };
  try {
    try {
      held = await wget(job, tmpDownload, pveTmp);
    } catch (err) {
      if (err instanceof WgetFailed) throw new Error(`download failed: ${err.message}`, { cause: err });
      throw err;
    }
    if (job.checksum) {
      const got = await fileHash(job.checksum.algorithm, tmpDownload);
      if (got !== job.checksum.expected.toLowerCase()) {
        ctx.log('calculating checksum...');
        throw new Error(`checksum mismatch: got '${got}' != expect '${job.checksum.expected}'`);
      }
      ctx.log('calculating checksum...OK, checksum verified');
    }
    let ready = tmpDownload;
    if (job.decompressor) {
      ctx.log(`decompressing ${pveTmp} to ${pveDest}.tmp_dcom.${job.pid}`);
      await decompress(job.decompressor, tmpDownload, tmpDecompressed);
      rmSync(tmpDownload, { force: true });
      release();
      ready = tmpDecompressed;
      held = statSync(ready).size;
      if (!sim.capacity.takeFileSpace(storage, node, held)) {
        held = 0;
        throw new Error(`decompression failed: No space left on device`);
      }
    }
    if (job.validate) {
      try {
        job.validate(ready, pveTmp);
      } catch (err) {
        throw new Error(`failed to verify file: ${(err as Error).message}`, { cause: err });
      }
    }
    // A killed worker stops here and leaves its temporary file (and the space it takes) behind, as SIGKILL would.
    ctx.failIfInjected();
    renameSync(ready, dest);
    held = 0;
  } catch (err) {
    if (err instanceof WorkerKilled) throw err;
    rmSync(tmpDownload, { force: true });
    rmSync(tmpDecompressed, { force: true });
    release();
    // A stop (SIGTERM to the worker) ends whatever it was doing; the cleanup above is download_file_from_url's.
    if (ctx.signal.aborted) throw new Error(INTERRUPTED, { cause: err });
    throw err;
  }
  ctx.log(`download of '${job.url}' to '${pveDest}' finished`);
}

/** Streamed: images are hundreds of MiB. */
async function fileHash(algorithm: string, path: string): Promise<string> {
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function decompress(command: string[], from: string, to: string): Promise<void> {
  const out = createWriteStream(to);
  if (command[0] === 'zcat') return pipeline(createReadStream(from), createGunzip(), out);
  const child = spawn(command[0]!, [...command.slice(1), from], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code ?? 1));
  });
  await pipeline(child.stdout, out);
  const code = await exited;
  if (code !== 0) throw new Error(`command '${[...command, from].join(' ')}' failed: ${stderr.trim().split('\n').pop() || `exit code ${code}`}`);
}

/** wget's clock stamp: local time, `YYYY-MM-DD HH:MM:SS`. */
function stamp(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** wget's short sizes (`67M`, `488K`, `1.5G`): one decimal below 10. */
function humanSize(bytes: number): string {
  const units = ['', 'K', 'M', 'G', 'T'];
  let value = bytes;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  if (i === 0) return String(bytes);
  return value < 10 ? `${value.toFixed(1)}${units[i]}` : `${Math.round(value)}${units[i]}`;
}

function rate(bytes: number, ms: number): string {
  const perSecond = bytes / Math.max(ms / 1000, 0.001);
  const units = ['B', 'K', 'M', 'G'];
  let value = perSecond;
  let i = 0;
  while (value >= 1024 && i < units.length - 1) {
    value /= 1024;
    i++;
  }
  return `${value >= 100 ? Math.round(value) : value.toFixed(value >= 10 ? 1 : 2)}${units[i]}`;
}

/** One line of `--progress=dot:giga`: the offset in KiB, a dot per MiB in clusters of 8, the share done. */
function dotLine(start: number, bytes: number, total: number | undefined, final: boolean, ms: number): string {
  const dots = Math.floor((bytes - start) / (1024 * 1024));
  const clusters = Array.from({ length: 4 }, (_, i) => ' ' + '.'.repeat(Math.max(0, Math.min(8, dots - i * 8))).padEnd(8));
  const area = clusters.join('').trimEnd().padEnd(36);
  const percent = total ? `${String(Math.floor((bytes / total) * 100)).padStart(3)}%` : '';
  const speed = rate(bytes - start, ms).padStart(6);
  return `${String(Math.floor(start / 1024)).padStart(6)}K${area}${percent}${speed}${final ? `=${(ms / 1000).toFixed(ms < 1000 ? 3 : 1)}s` : ' 0s'}`;
}

/**
 * `wget --progress=dot:giga -O <tmp> <url>` as PVE runs it: follows redirects, writes the body to `tmp` and logs
 * what wget prints. Returns the bytes written (already counted against the storage); throws `WgetFailed` with
 * wget's last stderr line.
 */
async function wget(job: Download, tmp: string, pveTmp: string): Promise<number> {
  const { ctx } = job;
  let url = job.url;
  for (let hop = 0; ; hop++) {
    ctx.log(`--${stamp()}--  ${url}`);
    const target = new URL(url);
    const port = target.port || (target.protocol === 'https:' ? '443' : '80');
    let where = `${target.hostname}:${port}`;
    if (!isIP(target.hostname.replace(/^\[|\]$/g, ''))) {
      let address: string;
      try {
        address = (await lookup(target.hostname)).address;
      } catch {
        ctx.log(`Resolving ${target.hostname} (${target.hostname})... failed: Name or service not known.`);
        throw new WgetFailed(`wget: unable to resolve host address '${target.hostname}'`);
      }
      ctx.log(`Resolving ${target.hostname} (${target.hostname})... ${address}`);
      where = `${target.hostname} (${target.hostname})|${address}|:${port}`;
    }
    let res;
    try {
      res = await request(url, { method: 'GET', dispatcher: job.verify ? verifying : insecure, headersTimeout: 900_000, bodyTimeout: 900_000, signal: ctx.signal });
    } catch (err) {
      const code = (err as { code?: string }).code ?? '';
      if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)) {
        ctx.log(`Connecting to ${where}... connected.`);
        ctx.log(`ERROR: cannot verify ${target.hostname}'s certificate:`);
        ctx.log(`  Unable to locally verify the issuer's authority.`);
        throw new WgetFailed(`To connect to ${target.hostname} insecurely, use \`--no-check-certificate'.`);
      }
      const reason = code === 'ECONNREFUSED' ? 'Connection refused' : code === 'EHOSTUNREACH' ? 'No route to host' : code === 'ETIMEDOUT' ? 'Connection timed out' : 'Connection reset by peer';
      throw new WgetFailed(`Connecting to ${where}... failed: ${reason}.`);
    }
    ctx.log(`Connecting to ${where}... connected.`);
    const reason = STATUS_TEXT[res.statusCode] ?? '';
    ctx.log(`HTTP request sent, awaiting response... ${res.statusCode} ${reason}`.trimEnd());
    const location = res.headers.location;
    if (res.statusCode >= 300 && res.statusCode < 400 && typeof location === 'string') {
      await res.body.dump();
      if (hop >= MAX_REDIRECTS) throw new WgetFailed(`${MAX_REDIRECTS} redirections exceeded.`);
      url = new URL(location, url).toString();
      ctx.log(`Location: ${location} [following]`);
      continue;
    }
    if (res.statusCode >= 400) {
      await res.body.dump();
      ctx.log(`${stamp()} ERROR ${res.statusCode}: ${reason}.`);
      // wget ends with a blank line: run_command keeps no last line, and dies with the exit code (8, server error).
      throw new WgetFailed('exit code 8');
    }
    const length = Number(res.headers['content-length'] ?? NaN);
    const total = Number.isFinite(length) ? length : undefined;
    const type = String(res.headers['content-type'] ?? '').split(';')[0]!;
    ctx.log(`Length: ${total !== undefined ? `${total} (${humanSize(total)})` : 'unspecified'}${type ? ` [${type}]` : ''}`);
    ctx.log(`Saving to: '${pveTmp}'`);
    return receive(job, res.body, tmp, pveTmp, total);
  }
}

/** The body into `tmp`, a dot line per 32 MiB, the storage's space taken as the bytes land. */
async function receive(job: Download, body: AsyncIterable<Buffer> & { destroy(err?: Error): unknown }, tmp: string, pveTmp: string, total: number | undefined): Promise<number> {
  const { ctx, sim, storage, node } = job;
  const out: WriteStream = createWriteStream(tmp);
  const started = Date.now();
  let bytes = 0;
  let lineStart = 0;
  let lineStartedAt = started;
  const throttle = sim.faults.peek('slowDownload', { node, storage: storage.id });
  try {
    for await (const chunk of body) {
      if (!sim.capacity.takeFileSpace(storage, node, chunk.length)) {
        ctx.log(dotLine(lineStart, bytes, total, false, Date.now() - lineStartedAt));
        body.destroy();
        throw new WgetFailed(`Cannot write to '${pveTmp}' (No space left on device).`);
      }
      bytes += chunk.length;
      if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
      while (bytes - lineStart >= WGET_LINE_BYTES) {
        const lineEnd = lineStart + WGET_LINE_BYTES;
        ctx.log(dotLine(lineStart, lineEnd, total, false, Date.now() - lineStartedAt));
        lineStart = lineEnd;
        lineStartedAt = Date.now();
      }
      if (throttle) await new Promise((resolve) => setTimeout(resolve, (chunk.length / throttle.bytesPerSecond) * 1000));
      if (ctx.signal.aborted) throw ctx.signal.reason;
    }
  } catch (err) {
    await new Promise<void>((resolve) => out.end(() => resolve()));
    sim.capacity.release(storage, node, bytes);
    if (err instanceof WgetFailed) throw err;
    throw new WgetFailed(`Read error at byte ${bytes}${total !== undefined ? `/${total}` : ''} (${(err as Error).message}).`);
  }
  await new Promise<void>((resolve) => out.end(() => resolve()));
  const ms = Date.now() - started;
  ctx.log(dotLine(lineStart, bytes, total ?? bytes, true, Date.now() - lineStartedAt));
  ctx.log(
    `${stamp()} (${rate(bytes, ms)
      .replace(/([KMG])$/, ' $1B/s')
      .replace(/B$/, ' B/s')}) - '${pveTmp}' saved [${bytes}${total !== undefined ? `/${total}` : ''}]`,
  );
  if (total !== undefined && bytes < total) {
    sim.capacity.release(storage, node, bytes);
    throw new WgetFailed(`Connection closed at byte ${bytes}. Giving up.`);
  }
  return bytes;
}

/** The reason phrases wget prints after the status code (the server's own, for the common ones). */
const STATUS_TEXT: Record<number, string> = {
  200: 'OK',
  301: 'Moved Permanently',
  302: 'Found',
  303: 'See Other',
  307: 'Temporary Redirect',
  308: 'Permanent Redirect',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  410: 'Gone',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

export const downloadRoutes: Route[] = [download];
