import type { ApiRequest, Route, SimContext } from '../context';
import { assertRootOnly } from '../context';
import { configDigest, DRIVE_KEY_RE, type VmConfig, type VmState } from '../cluster';
import { lockTimeoutText, paramError, permissionError, pveDie } from '../errors';
import { splitList } from '../formats';
import { printNet } from '../nic';
import { splitPropertyString, joinPropertyString } from '../propertyString';
import { resolveProperty } from '../schema';
import { sleep } from '../timing';
import { configKeyPrivilege, grantsConfigKey } from '../../../domain/pveConfigPrivileges';
import { allocateVolume, assertNotLocked, loadVm } from './qemuCommon';

/**
 * VM config (qemu-server `API2/Qemu.pm` `vmconfig`, `update_vm_api`, reference §4.9). GET types integer/boolean
 * keys as numbers (from the schema), masks `cipassword`, adds `digest`, and merges the `[pending]` section unless
 * `current=1`. POST (async `qmconfig`) and PUT (sync, null) share one implementation: early checks as HTTP errors,
 * then the change under the config flock. A stopped VM takes changes at once; a running one takes hot-pluggable
 * keys (per its `hotplug` setting, default `network,disk,usb`) and the fast-plug options at once, and everything
 * else goes to `[pending]` until its next PVE-initiated stop, start or reboot (`applyPending`).
 * `cipassword` is stored as PVE stores it: a SHA-512 crypt hash (`$6$...`), unless it already is a crypt hash or the
 * guest is Windows (cloudbase-init takes the password in clear).
 */
const CONFIG_PATH = '/nodes/{node}/qemu/{vmid}/config';
const NON_CONFIG_PARAMS = new Set(['node', 'vmid', 'digest', 'delete', 'revert', 'force', 'skiplock', 'background_delay']);
const CONFIG_PRIVS = ['VM.Config.Disk', 'VM.Config.CDROM', 'VM.Config.CPU', 'VM.Config.Memory', 'VM.Config.Network', 'VM.Config.HWType', 'VM.Config.Options', 'VM.Config.Cloudinit'];

/**
 * `check_vm_modify_config_perm` (§4.9.1) for one key set to `value` (or deleted): the key group's privilege through
 * `has`, which looks on the VM (and, on create, on the pool it joins); root-only keys for `root@pam` alone (a token
 * of root is not root, §2.3).
 */
export function assertConfigKeyAllowed(req: ApiRequest, sim: SimContext, key: string, value: string | undefined, vmPath: string, has: (privs: string[]) => boolean): void {
  const { identity } = req;
  if (identity.userid === 'root@pam' && !identity.tokenName) return;
  const need = configKeyPrivilege(key, value);
  if ('rootOnly' in need) throw pveDie(`only root can set '${key}' config`);
  if (!grantsConfigKey(need, (p) => has([p]))) {
    const privs = 'all' in need ? need.all.filter((p) => !has([p])) : need.any;
    throw permissionError(`${vmPath}, ${privs.join('all' in need ? ', ' : '|')}`);
  }
  if (key === 'startup') sim.perms.check(identity, '/', ['Sys.Modify']);
}

/** Config values come back as numbers when the schema types them integer/boolean (Perl's JSON encoder). */
function typedConfig(sim: SimContext, config: VmConfig): Record<string, string | number> {
  const properties = sim.schema.method(CONFIG_PATH, 'PUT')?.parameters?.properties;
  const out: Record<string, string | number> = {};
  for (const [k, v] of Object.entries(config)) {
    const type = properties ? resolveProperty(properties, k)?.type : /^(cores|sockets|template|onboot|vcpus)$/.test(k) ? 'integer' : 'string';
    out[k] = (type === 'integer' || type === 'boolean') && /^-?\d+$/.test(v) ? Number(v) : v;
  }
  return out;
}

export function normalizeTags(tags: string): string {
  return [...new Set(splitList(tags).map((t) => t.toLowerCase()))].sort().join(';');
}

/** `PVE::Tools::validate_ssh_public_keys` after URI-unescaping; the encoded form is what gets stored. */
export function assertSshKeys(encoded: string): void {
  let text: string;
  try {
    text = decodeURIComponent(encoded);
  } catch {
    throw pveDie('SSH public key validation error');
  }
  const keyLine = /^(?:(?:ssh-(?:rsa|dss|ed25519)|ecdsa-sha2-nistp(?:256|384|521)|sk-(?:ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com)\s+[A-Za-z0-9+/]+={0,3})(?:\s.*)?$/;
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line.startsWith('#')) continue;
    if (!keyLine.test(line.trim())) throw pveDie('SSH public key validation error');
  }
}

interface ConfigChange {
  set: Record<string, string>;
  remove: string[];
}

/** The early (synchronous) part shared by POST and PUT. */
function prepareChange(req: ApiRequest, sim: SimContext): { vm: VmState; change: ConfigChange } {
  const { params, identity } = req;
  assertRootOnly(req, 'skiplock');
  const vmid = Number(params.req('vmid'));
  const set: Record<string, string> = {};
  for (const [k, v] of Object.entries(params.values)) if (!NON_CONFIG_PARAMS.has(k)) set[k] = v;
  const remove = splitList(params.str('delete') ?? '');
  if (Object.keys(set).length === 0 && remove.length === 0 && !params.has('revert')) throw pveDie('no options specified');
  for (const opt of remove) {
    if (set[opt] !== undefined) throw paramError({ delete: `you can't use '-${opt}' and -delete ${opt}' at the same time` });
  }
  for (const key of [...Object.keys(set), ...remove]) {
    assertConfigKeyAllowed(req, sim, key, set[key], `/vms/${vmid}`, (privs) => sim.perms.has(identity, `/vms/${vmid}`, privs));
  }
  for (const bridge of Object.entries(set)
    .filter(([k]) => /^net\d+$/.test(k))
    .map(([, v]) => splitPropertyString(v, 'model').bridge)) {
    if (bridge) sim.perms.check(identity, `/sdn/zones/localnetwork/${bridge}`, ['SDN.Use']);
  }
  if (set.sshkeys !== undefined) assertSshKeys(set.sshkeys);
  for (const key of Object.keys(set)) if (/^net\d+$/.test(key)) set[key] = printNet(set[key]!);
  if (set.tags !== undefined) set.tags = normalizeTags(set.tags);
  if (set.description !== undefined) set.description = set.description.replace(/\s+$/, '');

  const vm = loadVm(sim, params.req('node'), vmid);
  assertCurrent(req, vm);
  for (const [key, value] of Object.entries(set)) {
    if (!DRIVE_KEY_RE.test(key)) continue;
    const file = splitPropertyString(value, 'file').file ?? '';
    const m = /^([^:]+):(\d+(?:\.\d+)?)$/.exec(file);
    if (!m) continue;
    const storage = sim.cluster.storages.get(m[1]!);
    if (!storage) throw pveDie(`storage '${m[1]}' does not exist`);
    sim.perms.check(identity, `/storage/${storage.id}`, ['Datastore.AllocateSpace']);
  }
  return { vm, change: { set, remove } };
}

/** Checked early and again under the flock: digest and the `lock` property. */
function assertCurrent(req: ApiRequest, vm: VmState): void {
  const digest = req.params.str('digest');
  if (digest && digest !== digestOf(vm)) {
    throw pveDie('detected modified configuration - file changed by other user? Try again.');
  }
  if (!req.params.bool('skiplock')) assertNotLocked(vm);
}

/** Options PVE changes on a running VM without any hotplug (qemu-server `$fast_plug_option`), plus cipassword. */
const FAST_PLUG = new Set(['name', 'description', 'tags', 'onboot', 'protection', 'lock', 'shares', 'startup', 'vmstatestorage', 'hookscript', 'cipassword']);

/** Whether `key` changes on the running `vm` at once (hot-plug) or waits in `[pending]`. */
function appliesWhileRunning(vm: VmState, key: string): boolean {
  if (FAST_PLUG.has(key)) return true;
  const setting = vm.config.hotplug ?? '1';
  const features = setting === '0' ? [] : setting === '1' ? ['network', 'disk', 'usb'] : setting.split(',');
  if (/^net\d+$/.test(key)) return features.includes('network');
  if (/^(scsi|virtio)\d+$/.test(key)) return features.includes('disk');
  if (/^usb\d+$/.test(key)) return features.includes('usb');
  // qemu-server plugs memory DIMMs only into a NUMA guest, and CPUs only as `vcpus` (within sockets × cores): a new
  // `cores` always waits for a restart (`vmconfig_hotplug_pending`, PVE::QemuServer::Memory).
  if (key === 'memory') return features.includes('memory') && vm.config.numa === '1';
  if (key === 'vcpus') return features.includes('cpu');
  return false;
}

function applyChange(vm: VmState, change: ConfigChange): void {
  const running = vm.run !== undefined;
  for (const key of change.remove) {
    if (!running || appliesWhileRunning(vm, key)) {
      delete vm.config[key];
      if (vm.pending) delete vm.pending[key];
    } else {
      vm.pendingDelete = [...new Set([...(vm.pendingDelete ?? []), key])];
      if (vm.pending) delete vm.pending[key];
    }
  }
  for (const [key, value] of Object.entries(change.set)) {
    if (!running || appliesWhileRunning(vm, key)) {
      vm.config[key] = value;
      if (vm.pending) delete vm.pending[key];
    } else {
      vm.pending = { ...vm.pending, [key]: value };
    }
    if (vm.pendingDelete) vm.pendingDelete = vm.pendingDelete.filter((k) => k !== key);
  }
  tidyPending(vm);
}

function tidyPending(vm: VmState): void {
  if (vm.pending && Object.keys(vm.pending).length === 0) vm.pending = undefined;
  if (vm.pendingDelete && vm.pendingDelete.length === 0) vm.pendingDelete = undefined;
}

/** `vmconfig_apply_pending`: what a PVE-initiated stop, start or reboot does with the `[pending]` section. */
export function applyPending(vm: VmState): void {
  for (const key of vm.pendingDelete ?? []) delete vm.config[key];
  Object.assign(vm.config, vm.pending ?? {});
  vm.pending = undefined;
  vm.pendingDelete = undefined;
}

/** The config as GET shows it by default: pending values applied, pending deletions still shown. */
function effectiveConfig(vm: VmState): VmConfig {
  return { ...vm.config, ...vm.pending };
}

/** SHA1 over the whole config file, `[pending]` section included. */
export function digestOf(vm: VmState): string {
  const pending = vm.pending || vm.pendingDelete ? { ...vm.config, '[PENDING]': JSON.stringify([vm.pending ?? {}, vm.pendingDelete ?? []]) } : vm.config;
  return configDigest(pending);
}

/**
 * `<storage>:<GiB>` allocates `vm-<vmid>-disk-<n>` on the storage (capacity and storage lock included); the
 * simulator has no real volumes, only names and sizes.
 */
async function allocateNewDisks(sim: SimContext, vm: VmState, change: ConfigChange): Promise<void> {
  for (const [key, value] of Object.entries(change.set)) {
    if (!DRIVE_KEY_RE.test(key)) continue;
    const opts = splitPropertyString(value, 'file');
    const m = /^([^:]+):(\d+(?:\.\d+)?)$/.exec(opts.file ?? '');
    if (!m) continue;
    if (m[2] === '0' || opts.media === 'cdrom') continue;
    const used = new Set(
      Object.values({ ...vm.config, ...vm.pending })
        .map((v) => /vm-\d+-disk-(\d+)/.exec(v)?.[1])
        .filter(Boolean),
    );
    let n = 0;
    while (used.has(String(n))) n++;
    const volname = `vm-${vm.vmid}-disk-${n}`;
    await allocateVolume(sim, m[1]!, vm.node, Math.floor(Number(m[2]) * 1024 ** 3), volname);
    change.set[key] = joinPropertyString({ ...opts, file: `${m[1]}:${volname}`, size: `${m[2]}G` }, 'file');
  }
}

/** qemu-server hashes `cipassword` with SHA-512 crypt before it stores it (`PVE::Tools::encrypt_pw`). */
async function hashCloudInitPassword(vm: VmState, change: ConfigChange): Promise<void> {
  const password = change.set.cipassword;
  const ostype = change.set.ostype ?? vm.config.ostype ?? '';
  if (password === undefined || /^\$(1|2[aby]?|5|6)\$/.test(password) || /^(win|wxp|w2k)/.test(ostype)) return;
  // unixcrypt is an ES module; this project is CommonJS.
  const { encrypt } = await import('unixcrypt');
  change.set.cipassword = encrypt(password);
}

async function updateUnderFlock(req: ApiRequest, sim: SimContext, vm: VmState, change: ConfigChange, failIfInjected?: () => void): Promise<void> {
  const node = req.params.req('node');
  let release: () => void;
  try {
    release = await sim.flocks.acquire(node, vm.vmid, 'exclusive', sim.timing.flockTimeoutMs);
  } catch {
    throw pveDie(lockTimeoutText(vm.vmid));
  }
  try {
    const current = loadVm(sim, node, vm.vmid);
    assertCurrent(req, current);
    await hashCloudInitPassword(current, change);
    await sleep(sim.timing.configMs);
    failIfInjected?.();
    await allocateNewDisks(sim, current, change);
    applyChange(current, change);
  } finally {
    release();
  }
}

export const configRoutes: Route[] = [
  {
    method: 'GET',
    path: CONFIG_PATH,
    permission: ({ identity, params }, sim) => sim.perms.check(identity, `/vms/${params.str('vmid')}`, ['VM.Audit']),
    handle: ({ params }, sim) => {
      const vm = loadVm(sim, params.req('node'), Number(params.req('vmid')));
      const snapname = params.str('snapshot');
      let config: VmConfig;
      if (snapname !== undefined) {
        const snap = vm.snapshots?.get(snapname);
        if (!snap) throw pveDie(`snapshot '${snapname}' does not exist`);
        config = { ...snap.config, ...(snap.parent ? { parent: snap.parent } : {}) };
      } else {
        config = params.bool('current') ? vm.config : effectiveConfig(vm);
      }
      const typed = typedConfig(sim, config);
      if (typed.cipassword !== undefined) typed.cipassword = '**********';
      return { ...typed, digest: snapname !== undefined ? configDigest(config) : digestOf(vm) };
    },
  },
  {
    method: 'GET',
    path: '/nodes/{node}/qemu/{vmid}/pending',
    permission: ({ identity, params }, sim) => sim.perms.check(identity, `/vms/${params.str('vmid')}`, ['VM.Audit']),
    handle: ({ params }, sim) => {
      const vm = loadVm(sim, params.req('node'), Number(params.req('vmid')));
      const keys = [...new Set([...Object.keys(vm.config), ...Object.keys(vm.pending ?? {}), ...(vm.pendingDelete ?? [])])].sort();
      const typed = typedConfig(sim, vm.config);
      const typedPending = typedConfig(sim, vm.pending ?? {});
      const mask = (k: string, v: string | number | undefined) => (k === 'cipassword' && v !== undefined ? '**********' : v);
      return keys
        .filter((k) => !['digest', 'snapshots'].includes(k))
        .map((key) => ({
          key,
          ...(typed[key] !== undefined ? { value: mask(key, typed[key]) } : {}),
          ...(typedPending[key] !== undefined ? { pending: mask(key, typedPending[key]) } : {}),
          ...(vm.pendingDelete?.includes(key) ? { delete: 1 } : {}),
        }));
    },
  },
  {
    method: 'PUT',
    path: CONFIG_PATH,
    permission: ({ identity, params }, sim) => sim.perms.check(identity, `/vms/${params.str('vmid')}`, CONFIG_PRIVS, true),
    handle: async (req, sim) => {
      const { vm, change } = prepareChange(req, sim);
      await updateUnderFlock(req, sim, vm, change);
      return null;
    },
  },
  {
    method: 'POST',
    path: CONFIG_PATH,
    permission: ({ identity, params }, sim) => sim.perms.check(identity, `/vms/${params.str('vmid')}`, CONFIG_PRIVS, true),
    handle: async (req, sim) => {
      const { vm, change } = prepareChange(req, sim);
      const task = sim.tasks.start({
        node: req.params.req('node'),
        type: 'qmconfig',
        id: String(vm.vmid),
        identity: req.identity,
        worker: (ctx) => updateUnderFlock(req, sim, vm, change, () => ctx.failIfInjected()),
      });
      const delay = req.params.int('background_delay');
      if (delay === undefined) return task.upid;
      // background_delay: wait up to that long; null if the task finished OK, its error if it failed.
      await Promise.race([task.done, sleep(delay * 1000)]);
      if (task.status === 'running') return task.upid;
      if (task.exitstatus === 'OK') return null;
      throw pveDie(`failed to update VM ${vm.vmid}: ${task.exitstatus}`);
    },
  },
];
