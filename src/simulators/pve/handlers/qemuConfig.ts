import type { ApiRequest, Route, SimContext } from '../context';
import { assertRootOnly } from '../context';
import { configDigest, DRIVE_KEY_RE, type VmConfig, type VmState } from '../cluster';
import { lockTimeoutText, paramError, permissionError, pveDie } from '../errors';
import { splitList } from '../formats';
import { splitPropertyString, joinPropertyString } from '../propertyString';
import { resolveProperty } from '../schema';
import { sleep } from '../timing';
import { assertNotLocked, loadVm } from './qemuCommon';

/**
 * VM config (qemu-server `API2/Qemu.pm` `vmconfig`, `update_vm_api`, reference §4.9). GET types integer/boolean
 * keys as numbers (from the schema), masks `cipassword`, adds `digest`. POST (async `qmconfig`) and PUT (sync,
 * null) share one implementation: early checks as HTTP errors, then the change under the config flock.
 *
 * Simplification: PVE writes changes for a running VM to `[pending]` unless hot-pluggable; the simulator applies
 * every change immediately (no pending section), and does not hash `cipassword` (it is stored as sent).
 */
const CONFIG_PATH = '/nodes/{node}/qemu/{vmid}/config';
const NON_CONFIG_PARAMS = new Set(['node', 'vmid', 'digest', 'delete', 'revert', 'force', 'skiplock', 'background_delay']);
const CONFIG_PRIVS = ['VM.Config.Disk', 'VM.Config.CDROM', 'VM.Config.CPU', 'VM.Config.Memory', 'VM.Config.Network',
  'VM.Config.HWType', 'VM.Config.Options', 'VM.Config.Cloudinit'];

function privilegeFor(key: string): string {
  if (/^(ciuser|cipassword|citype|ciupgrade|cicustom|searchdomain|nameserver|sshkeys|ipconfig\d+)$/.test(key)) return 'VM.Config.Cloudinit';
  if (/^net\d+$/.test(key)) return 'VM.Config.Network';
  if (DRIVE_KEY_RE.test(key) || /^unused\d+$/.test(key)) return 'VM.Config.Disk';
  if (/^(memory|balloon|shares)$/.test(key)) return 'VM.Config.Memory';
  if (/^(cores|sockets|vcpus|cpu|cpulimit|cpuunits|affinity|numa\d*)$/.test(key)) return 'VM.Config.CPU';
  if (/^(vga|hostpci\d+|usb\d+|serial\d+|parallel\d+|audio0|scsihw|bios|machine|tablet|watchdog|rng0|ivshmem)$/.test(key)) return 'VM.Config.HWType';
  return 'VM.Config.Options';
}

/** Config values come back as numbers when the schema types them integer/boolean (Perl's JSON encoder). */
function typedConfig(sim: SimContext, config: VmConfig): Record<string, string | number> {
  const properties = sim.schema?.method(CONFIG_PATH, 'PUT')?.parameters?.properties;
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
function assertSshKeys(encoded: string): void {
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
    const priv = privilegeFor(key);
    if (!sim.perms.has(identity, `/vms/${vmid}`, [priv])) throw permissionError(`/vms/${vmid}, ${priv}`);
  }
  for (const bridge of Object.entries(set).filter(([k]) => /^net\d+$/.test(k)).map(([, v]) => splitPropertyString(v, 'model').bridge)) {
    if (bridge) sim.perms.check(identity, `/sdn/zones/localnetwork/${bridge}`, ['SDN.Use']);
  }
  if (set.sshkeys !== undefined) assertSshKeys(set.sshkeys);
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
  if (digest && digest !== configDigest(vm.config)) {
    throw pveDie('detected modified configuration - file changed by other user? Try again.');
  }
  if (!req.params.bool('skiplock')) assertNotLocked(vm);
}

function applyChange(vm: VmState, change: ConfigChange): void {
  for (const key of change.remove) delete vm.config[key];
  for (const [key, value] of Object.entries(change.set)) vm.config[key] = allocateNewDisk(vm, key, value);
}

/** `<storage>:<GiB>` allocates `vm-<vmid>-disk-<n>` (the simulator has no real volumes, only names and sizes). */
function allocateNewDisk(vm: VmState, key: string, value: string): string {
  if (!DRIVE_KEY_RE.test(key)) return value;
  const opts = splitPropertyString(value, 'file');
  const m = /^([^:]+):(\d+(?:\.\d+)?)$/.exec(opts.file ?? '');
  if (!m) return value;
  const used = new Set(Object.values(vm.config).map((v) => /vm-\d+-disk-(\d+)/.exec(v)?.[1]).filter(Boolean));
  let n = 0;
  while (used.has(String(n))) n++;
  return joinPropertyString({ ...opts, file: `${m[1]}:vm-${vm.vmid}-disk-${n}`, size: `${m[2]}G` }, 'file');
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
    await sleep(sim.timing.configMs);
    failIfInjected?.();
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
      const snapshot = params.str('snapshot');
      if (snapshot !== undefined) throw pveDie(`snapshot '${snapshot}' does not exist`);
      const typed = typedConfig(sim, vm.config);
      if (typed.cipassword !== undefined) typed.cipassword = '**********';
      return { ...typed, digest: configDigest(vm.config) };
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
        node: req.params.req('node'), type: 'qmconfig', id: String(vm.vmid), identity: req.identity,
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
