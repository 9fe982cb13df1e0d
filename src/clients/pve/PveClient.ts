import type { TLSSocket } from 'node:tls';
import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { Agent, buildConnector, request } from 'undici';
import type { z } from 'zod';
import { PveApiError } from './PveApiError';
import {
  clusterResourceSchema,
  guestInterfacesSchema,
  guestFileSchema,
  nextIdSchema,
  noDataSchema,
  nodeSchema,
  pendingConfigSchema,
  snapshotListSchema,
  storageVolumeSchema,
  taskListSchema,
  taskLogSchema,
  taskStatusSchema,
  upidSchema,
  versionSchema,
  vmConfigSchema,
  vmStatusSchema,
  type ClusterResource,
  type GuestInterfaces,
  type GuestFile,
  type PendingConfigEntry,
  type SnapshotEntry,
  type StorageVolume,
  type TaskListEntry,
  type TaskStatus,
  type VmConfig,
  type VmStatus,
} from './schemas';
import { parseUpid } from './upid';
import { pveOperation, upstreamErrorClass, type UpstreamCallHook } from '../../observability/metrics';

export interface PveClientOptions {
  /** `https://host:8006` — the `/api2/json` prefix is added here. */
  endpoint: string;
  /** `user@realm!tokenname` */
  tokenId: string;
  tokenSecret: string;
  /** PEM bundle of the cluster CA (`/etc/pve/pve-root-ca.pem`). */
  ca?: string | Buffer;
  /** SHA-256 of the node certificate as colon-separated hex (GET /nodes `ssl_fingerprint`). */
  fingerprint?: string;
  /** Skip TLS verification: development only (refused in production by config). */
  insecureSkipVerify?: boolean;
  timeoutMs: number;
  /** Told of every API call once it ends: a bounded route template, `ok` or the error class, and seconds taken. */
  onCall?: UpstreamCallHook;
}

type Param = string | number | boolean | undefined;
export type Params = Record<string, Param>;

/**
 * A thin typed client for the Proxmox VE API with an API token. It knows PVE's transport rules
 * (proxmox-behaviour.md §1): form bodies with booleans as 0/1, DELETE parameters in the query string, the
 * `{data}` envelope, and errors whose text lives in the HTTP reason phrase. It has no Temporal in it.
 */
export class PveClient {
  private readonly base: string;
  private readonly authHeader: string;
  private readonly dispatcher: Agent;
  private readonly timeoutMs: number;
  private readonly onCall?: UpstreamCallHook;
  /** `user@realm!tokenname`: what the UPIDs of the tasks this client starts carry as their user. */
  readonly tokenId: string;

  constructor(opts: PveClientOptions) {
    this.onCall = opts.onCall;
    this.tokenId = opts.tokenId;
    this.base = `${opts.endpoint.replace(/\/+$/, '')}/api2/json`;
    this.authHeader = `PVEAPIToken=${opts.tokenId}=${opts.tokenSecret}`;
    this.timeoutMs = opts.timeoutMs;
    this.dispatcher = new Agent({ connect: pinnedConnector(opts), keepAliveTimeout: 10_000 });
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  // --- discovery -------------------------------------------------------------------------------------------------

  version() {
    return this.call('GET', '/version', {}, versionSchema);
  }

  nodes() {
    return this.call('GET', '/nodes', {}, nodeSchema.array());
  }

  clusterResources(type?: 'vm' | 'storage' | 'node'): Promise<ClusterResource[]> {
    return this.call('GET', '/cluster/resources', { type }, clusterResourceSchema.array());
  }

  /** The lowest free VMID, or (with `vmid`) that id if it is free; 400 "already exists" otherwise. No reservation. */
  nextId(vmid?: number): Promise<number> {
    return this.call('GET', '/cluster/nextid', { vmid }, nextIdSchema);
  }

  // --- VMs ---------------------------------------------------------------------------------------------------------

  cloneVm(node: string, sourceVmid: number, params: Params): Promise<string> {
    return this.call('POST', `/nodes/${seg(node)}/qemu/${sourceVmid}/clone`, params, upidSchema);
  }

  vmConfig(node: string, vmid: number): Promise<VmConfig> {
    return this.call('GET', `/nodes/${seg(node)}/qemu/${vmid}/config`, {}, vmConfigSchema);
  }

  /** Async config update (POST): returns the `qmconfig` task's UPID. */
  updateVmConfig(node: string, vmid: number, params: Params): Promise<string> {
    return this.call('POST', `/nodes/${seg(node)}/qemu/${vmid}/config`, params, upidSchema);
  }

  /** Grows a disk (`size` absolute like `40G`, or `+10G`). PVE >= 8 answers with a `resize` task, PVE 7 with null. */
  resizeDisk(node: string, vmid: number, disk: string, size: string): Promise<string | null> {
    return this.call('PUT', `/nodes/${seg(node)}/qemu/${vmid}/resize`, { disk, size }, upidSchema.nullable());
  }

  vmStatus(node: string, vmid: number): Promise<VmStatus> {
    return this.call('GET', `/nodes/${seg(node)}/qemu/${vmid}/status/current`, {}, vmStatusSchema);
  }

  vmPower(node: string, vmid: number, action: 'start' | 'stop' | 'shutdown' | 'reboot', params: Params = {}): Promise<string> {
    return this.call('POST', `/nodes/${seg(node)}/qemu/${vmid}/status/${action}`, params, upidSchema);
  }

  guestNetworkInterfaces(node: string, vmid: number): Promise<GuestInterfaces> {
    return this.call('GET', `/nodes/${seg(node)}/qemu/${vmid}/agent/network-get-interfaces`, {}, guestInterfacesSchema);
  }

  /** A file of the guest, read through its agent (from its start: PVE reads at most 16 MiB). */
  readGuestFile(node: string, vmid: number, file: string, signal?: AbortSignal): Promise<GuestFile> {
    return this.call('GET', `/nodes/${seg(node)}/qemu/${vmid}/agent/file-read`, { file }, guestFileSchema, signal);
  }

  destroyVm(node: string, vmid: number, params: Params): Promise<string> {
    return this.call('DELETE', `/nodes/${seg(node)}/qemu/${vmid}`, params, upidSchema);
  }

  /** Offline migration of a stopped VM (its local disks go along); afterwards every call must name `target`. */
  migrateVm(node: string, vmid: number, target: string): Promise<string> {
    return this.call('POST', `/nodes/${seg(node)}/qemu/${vmid}/migrate`, { target }, upidSchema);
  }

  /** Live migration of a running VM, its local disks copied along (`with-local-disks` is harmless without any). */
  migrateRunningVm(node: string, vmid: number, target: string): Promise<string> {
    return this.call('POST', `/nodes/${seg(node)}/qemu/${vmid}/migrate`, { target, online: true, 'with-local-disks': true }, upidSchema);
  }

  /** The config keys whose change waits for the next start (`pending`) or whose deletion does. */
  vmPendingConfig(node: string, vmid: number): Promise<PendingConfigEntry[]> {
    return this.call('GET', `/nodes/${seg(node)}/qemu/${vmid}/pending`, {}, pendingConfigSchema);
  }

  snapshots(node: string, vmid: number): Promise<SnapshotEntry[]> {
    return this.call('GET', `/nodes/${seg(node)}/qemu/${vmid}/snapshot`, {}, snapshotListSchema);
  }

  createSnapshot(node: string, vmid: number, params: { snapname: string; vmstate?: boolean; description?: string }): Promise<string> {
    return this.call('POST', `/nodes/${seg(node)}/qemu/${vmid}/snapshot`, params, upidSchema);
  }

  /** Stops a running VM and puts its disks (and config) back as they were; a RAM snapshot resumes, `start` boots. */
  rollbackSnapshot(node: string, vmid: number, snapname: string, params: { start?: boolean } = {}): Promise<string> {
    return this.call('POST', `/nodes/${seg(node)}/qemu/${vmid}/snapshot/${seg(snapname)}/rollback`, params, upidSchema);
  }

  deleteSnapshot(node: string, vmid: number, snapname: string): Promise<string> {
    return this.call('DELETE', `/nodes/${seg(node)}/qemu/${vmid}/snapshot/${seg(snapname)}`, {}, upidSchema);
  }

  // --- images (PVE 8.4+: `import` content, `import-from` on create) -----------------------------------------------

  /**
   * Downloads `url` onto `storage` as `filename` (a `download` task). With `checksum` Proxmox verifies the file when
   * the download ends and fails the task on a mismatch, removing the file. Needs `Datastore.AllocateTemplate` on the
   * storage and `Sys.AccessNetwork` on the node (or `Sys.Modify` on /).
   */
  downloadUrl(
    node: string,
    storage: string,
    params: { url: string; filename: string; content: 'import' | 'iso' | 'vztmpl'; checksum?: string; 'checksum-algorithm'?: string; 'verify-certificates'?: boolean },
  ): Promise<string> {
    return this.call('POST', `/nodes/${seg(node)}/storage/${seg(storage)}/download-url`, params, upidSchema);
  }

  storageContent(node: string, storage: string, content?: string): Promise<StorageVolume[]> {
    return this.call('GET', `/nodes/${seg(node)}/storage/${seg(storage)}/content`, { content }, storageVolumeSchema.array());
  }

  /** Deletes a volume; answers with a task's UPID (or null on storages that delete at once). */
  deleteVolume(node: string, volid: string): Promise<string | null> {
    return this.call(
      'DELETE',
      `/nodes/${seg(node)}/storage/${seg(volid.split(':')[0]!)}/content/${seg(volid)}`,
      {},
      upidSchema
        .nullable()
        .optional()
        .transform((v) => v ?? null),
    );
  }

  /** Creates a VM (a `qmcreate` task); disks may be imported (`scsi0=STORAGE:0,import-from=VOLID`). */
  createVm(node: string, params: Params): Promise<string> {
    return this.call('POST', `/nodes/${seg(node)}/qemu`, params, upidSchema);
  }

  /** Turns a stopped VM into a template (a `qmtemplate` task). */
  convertToTemplate(node: string, vmid: number): Promise<string> {
    return this.call('POST', `/nodes/${seg(node)}/qemu/${vmid}/template`, {}, upidSchema);
  }

  // --- HA (Sys.Console on / to change, Sys.Audit on / to read) ---------------------------------------------------

  /** Makes a guest an HA resource (sync); a duplicate answers 500 `resource ID 'vm:N' already defined`. */
  async addHaResource(params: { sid: string; state?: 'started' | 'stopped'; group?: string; comment?: string }): Promise<void> {
    await this.call('POST', '/cluster/ha/resources', params, noDataSchema);
  }

  /** Removes a guest from HA (sync); an unknown one answers 500 `... not HA managed!`. The VM itself is untouched. */
  async removeHaResource(sid: string): Promise<void> {
    await this.call('DELETE', `/cluster/ha/resources/${seg(sid)}`, {}, noDataSchema);
  }

  // --- tasks -------------------------------------------------------------------------------------------------------

  taskStatus(upid: string): Promise<TaskStatus> {
    const { node } = parseUpid(upid);
    return this.call('GET', `/nodes/${seg(node)}/tasks/${seg(upid)}/status`, {}, taskStatusSchema);
  }

  /** Tasks still running for a VM on a node: tells a live lock from a stale one left by a killed worker. */
  activeTasks(node: string, vmid: number): Promise<TaskListEntry[]> {
    return this.call('GET', `/nodes/${seg(node)}/tasks`, { vmid, source: 'active' }, taskListSchema);
  }

  /**
   * The clone tasks on `node` (where their source lives: clones run there) that this client's token started: of
   * template `sourceVmid` only, at or after `since` (epoch seconds), running only (`active`) or ended too (reference
   * §3.4). A `qmclone` task's id is its source, not the new VM: this is how a retry finds the clone an earlier attempt
   * started but never learnt the UPID of.
   */
  async ownCloneTasks(node: string, opts: { sourceVmid?: number; since?: number; source: 'active' | 'all' }): Promise<TaskListEntry[]> {
    const params = { vmid: opts.sourceVmid, typefilter: 'qmclone', source: opts.source, since: opts.since, limit: 1000 };
    const tasks = await this.call('GET', `/nodes/${seg(node)}/tasks`, params, taskListSchema);
    // An auditor's list holds everyone's tasks: keep the ones whose UPID names exactly this token.
    return tasks.filter((t) => {
      try {
        return parseUpid(t.upid).user === this.tokenId;
      } catch {
        return false;
      }
    });
  }

  /** Stops a running task (its worker is killed): a cancelled download stops filling the storage. */
  async stopTask(upid: string): Promise<void> {
    const { node } = parseUpid(upid);
    await this.call('DELETE', `/nodes/${seg(node)}/tasks/${seg(upid)}`, {}, noDataSchema);
  }

  async taskLogTail(upid: string, lines = 20): Promise<string[]> {
    const { node } = parseUpid(upid);
    const log = await this.call('GET', `/nodes/${seg(node)}/tasks/${seg(upid)}/log`, { limit: 0 }, taskLogSchema);
    return log.slice(-lines).map((l) => l.t);
  }

  // --- transport ---------------------------------------------------------------------------------------------------

  async call<S extends z.ZodType>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, params: Params, schema: S, signal?: AbortSignal): Promise<z.output<S>> {
    if (!this.onCall) return this.send(method, path, params, schema, signal);
    const started = performance.now();
    let outcome = 'ok';
    try {
      return await this.send(method, path, params, schema, signal);
    } catch (err) {
      outcome = upstreamErrorClass(err);
      throw err;
    } finally {
      this.onCall('proxmox', pveOperation(method, path), outcome, (performance.now() - started) / 1000);
    }
  }

  private async send<S extends z.ZodType>(method: 'GET' | 'POST' | 'PUT' | 'DELETE', path: string, params: Params, schema: S, signal?: AbortSignal): Promise<z.output<S>> {
    const encoded = encodeParams(params);
    const inQuery = method === 'GET' || method === 'DELETE';
    const url = inQuery && encoded ? `${this.base}${path}?${encoded}` : `${this.base}${path}`;
    const timeout = AbortSignal.timeout(this.timeoutMs);
    // undici's request rather than fetch: the same call for about a third of the CPU (no WHATWG streams and headers),
    // and Proxmox's reason phrase is still there (statusText).
    let res;
    let text;
    try {
      res = await request(url, {
        method,
        dispatcher: this.dispatcher,
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
        headers: {
          authorization: this.authHeader,
          accept: 'application/json',
          'accept-encoding': 'gzip',
          ...(inQuery ? {} : { 'content-type': 'application/x-www-form-urlencoded' }),
        },
        body: inQuery ? undefined : encoded,
      });
      // Proxmox gzips a large answer (a big cluster's resources) when asked, as fetch asked.
      const raw = Buffer.from(await res.body.arrayBuffer());
      text = (res.headers['content-encoding'] === 'gzip' ? await gunzipped(raw) : raw).toString('utf8');
    } catch (cause) {
      const why = timeout.aborted ? `no answer within ${this.timeoutMs} ms` : transportReason(cause);
      throw new PveApiError({ method, path, message: why, cause });
    }
    let body: { data?: unknown; message?: string; errors?: Record<string, string> } = {};
    try {
      body = text ? JSON.parse(text) : {};
    } catch {
      // 401 and HTTP-level rejects have empty or plain-text bodies; the reason phrase carries the text.
    }
    if (res.statusCode < 200 || res.statusCode > 299) {
      throw new PveApiError({
        method,
        path,
        status: res.statusCode,
        reason: res.statusText,
        message: body.message ?? (text && !text.startsWith('{') ? text : undefined),
        errors: body.errors,
      });
    }
    const parsed = schema.safeParse(body.data);
    if (!parsed.success) {
      throw new PveApiError({
        method,
        path,
        status: res.statusCode,
        message: `unexpected answer shape: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      });
    }
    return parsed.data;
  }
}

/** `application/x-www-form-urlencoded` as PVE reads it: booleans as 0/1, `+` sent as %2B, undefined dropped. */
export function encodeParams(params: Params): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value === undefined) continue;
    search.append(key, typeof value === 'boolean' ? (value ? '1' : '0') : String(value));
  }
  return search.toString();
}

function seg(s: string): string {
  return encodeURIComponent(s);
}

const gunzipped = promisify(gunzip);

function transportReason(cause: unknown): string {
  const err = cause as { cause?: { code?: string; message?: string }; message?: string };
  return err?.cause?.message ?? err?.cause?.code ?? err?.message ?? String(cause);
}

/**
 * TLS as an operator of a real cluster expects it: verified against the given CA (or the system store), or pinned
 * to one certificate's SHA-256 fingerprint (PVE's self-signed node certificates), never silently unverified.
 */
function pinnedConnector(opts: PveClientOptions): buildConnector.connector {
  const pin = opts.fingerprint?.toUpperCase();
  const connect = buildConnector({
    ca: opts.ca,
    rejectUnauthorized: !(pin || opts.insecureSkipVerify),
  });
  if (!pin) return connect;
  return (options, callback) =>
    connect(options, (err, socket) => {
      if (err || !socket) return callback(err ?? new Error('no socket'), null);
      const presented = (socket as TLSSocket).getPeerCertificate?.().fingerprint256?.toUpperCase();
      if (presented !== pin) {
        socket.destroy();
        return callback(new Error(`certificate fingerprint ${presented ?? 'none'} does not match the pinned PVE_FINGERPRINT ${pin}`), null);
      }
      callback(null, socket);
    });
}
