import { readFileSync, statSync } from 'node:fs';
import { join, normalize, sep } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { SimContext } from './context';
import type { RunState, VmState } from './cluster';
import { parseNamedPropertyString } from './formats';
import { pveDie } from './errors';
import { splitPropertyString } from './propertyString';
import { loadVm } from './handlers/qemuCommon';
import { cloudInitFiles } from './realGuests/cloudInitDrive';

/**
 * The guest side of a running VM: cloud-init reading the `cicustom` snippets at start, the QEMU guest agent
 * coming up `agentStartMs` after the start task ended, and the DHCP lease arriving `ipv4AfterAgentMs` later
 * (until then the agent reports only loopback and link-local IPv6, as real guests do right after boot).
 */
const MAX_SNIPPETS_BYTES = 3 * 1024 * 1024;

/** The `cicustom` snippets by kind, as bytes: what qemu-server puts on the cloud-init drive verbatim. */
export type CloudInitSnippets = Partial<Record<'user' | 'network' | 'meta' | 'vendor', Buffer>>;

/** Reads the cicustom snippets like qemu-server `Cloudinit.pm` does at start; errors are start task errors. */
export function readCloudInitSnippetBytes(sim: SimContext, vm: VmState): CloudInitSnippets {
  const cicustom = vm.config.cicustom;
  if (!cicustom) return {};
  const parts = parseNamedPropertyString('pve-qm-cicustom', cicustom);
  let total = 0;
  const snippets: CloudInitSnippets = {};
  for (const kind of ['user', 'network', 'meta', 'vendor'] as const) {
    const volid = parts[kind];
    if (!volid) continue;
    const m = /^([^:]+):(.*)$/.exec(volid);
    if (!m || !m[2]!.startsWith('snippets/')) throw new Error(`${volid} is not in the snippets directory`);
    const storage = sim.cluster.storages.get(m[1]!);
    if (!storage) throw new Error(`storage '${m[1]}' does not exist`);
    const dir = sim.snippetsDir(vm.node, storage.id);
    const file = normalize(join(dir, m[2]!.slice('snippets/'.length)));
    if (!file.startsWith(normalize(dir) + sep) || !isFile(file)) throw new Error(`can't find file '${volid}'`);
    const bytes = readFileSync(file);
    total += bytes.length;
    if (total > MAX_SNIPPETS_BYTES) throw new Error('Cloud-Init sum of snippets too big (> 3 MiB)');
    snippets[kind] = bytes;
  }
  return snippets;
}

/** The user-data snippet's text (what the modelled guest's cloud-init acts on). */
export function readCloudInitSnippets(sim: SimContext, vm: VmState): { userData?: string } {
  return { userData: readCloudInitSnippetBytes(sim, vm).user?.toString('utf8') };
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** After a start: the guest boots, cloud-init runs, the agent answers — announce it once per start. */
export function scheduleGuestBoot(sim: SimContext, vm: VmState, run: RunState, userData: string | undefined): void {
  run.hostName = cloudInitHostName(userData) ?? vm.config.name;
  // Without an enabled agent nothing in the guest answers, so nothing can tell the world that it booted.
  if (!agentEnabled(vm) || run.agentBroken) return;
  // A restored world resumes a boot that was under way: only the rest of the wait is left.
  const delay = Math.max(0, run.startedAt + sim.timing.agentStartMs - Date.now());
  const timer = setTimeout(() => {
    if (vm.run !== run) return;
    run.guestBooted = true;
    const instance = cloudInitInstanceId(sim, vm);
    const newInstance = instance !== vm.cloudInitInstance;
    vm.cloudInitInstance = instance;
    sim.onGuestBoot?.({ node: vm.node, vmid: vm.vmid, name: vm.config.name ?? `VM ${vm.vmid}`, userData, newInstance });
  }, delay);
  timer.unref();
  run.agentTimers.push(timer);
}

/**
 * The instance id the guest's cloud-init reads from the drive this start wrote (reference §4.13.1): the meta-data
 * snippet's, else the SHA-1 of user-data and network-config. The modelled guest's resolver stands for the node's,
 * the same at every start, so only changed snippet bytes (or ci* options) make a new instance.
 */
function cloudInitInstanceId(sim: SimContext, vm: VmState): string {
  let snippets: CloudInitSnippets = {};
  try {
    snippets = readCloudInitSnippetBytes(sim, vm);
  } catch {
    // The start read them already; a snippet removed since leaves the generated files.
  }
  const meta = cloudInitFiles(vm.config, snippets, { nameservers: [], searchDomains: [] })['meta-data'].toString('utf8');
  return /^instance-id:\s*(\S+)/m.exec(meta)?.[1] ?? meta;
}

/**
 * The name cloud-init's `set_hostname` gives the guest: user-data's `hostname`, else the first label of its `fqdn`;
 * undefined when user-data names none (then PVE's meta-data `local-hostname`, the VM name, applies).
 */
export function cloudInitHostName(userData: string | undefined): string | undefined {
  if (!userData) return undefined;
  let doc: unknown;
  try {
    doc = parseYaml(userData);
  } catch {
    return undefined;
  }
  if (!doc || typeof doc !== 'object') return undefined;
  const { hostname, fqdn } = doc as { hostname?: unknown; fqdn?: unknown };
  if (typeof hostname === 'string' && hostname) return hostname.split('.')[0];
  if (typeof fqdn === 'string' && fqdn) return fqdn.split('.')[0];
  return undefined;
}

export function agentEnabled(vm: VmState): boolean {
  const agent = vm.config.agent;
  if (agent === undefined) return false;
  const enabled = splitPropertyString(agent, 'enabled').enabled ?? '0';
  return /^(1|on|yes|true)$/i.test(enabled);
}

/** `assert_agent_available` + guest-ping (qemu-server `QemuServer/Agent.pm`). */
export function assertAgentAvailable(sim: SimContext, node: string, vmid: number): { vm: VmState; run: RunState } {
  const vm = loadVm(sim, node, vmid);
  if (vm.config.agent === undefined) throw pveDie('No QEMU guest agent configured');
  const run = vm.run;
  if (!run) throw pveDie(`VM ${vmid} is not running`);
  // A real guest's agent answers for itself (the ping comes next); a modelled one is up `agentStartMs` after start.
  const booted = sim.realGuests?.running(vmid) || Date.now() >= run.startedAt + sim.timing.agentStartMs;
  const up = agentEnabled(vm) && !run.agentBroken && !run.paused && booted;
  if (!up) throw pveDie('QEMU guest agent is not running');
  return { vm, run };
}

export function macOf(vm: VmState): string {
  const nic = splitPropertyString(vm.config.net0 ?? '', 'model');
  const mac = nic.macaddr ?? Object.entries(nic).find(([, v]) => /^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/.test(v))?.[1];
  return (mac ?? 'BC:24:11:00:00:00').toLowerCase();
}

function linkLocal(mac: string): string {
  const b = mac.split(':').map((h) => parseInt(h, 16));
  b[0] = b[0]! ^ 0x02;
  const words = [(b[0]! << 8) | b[1]!, (b[2]! << 8) | 0xff, (0xfe << 8) | b[3]!, (b[4]! << 8) | b[5]!];
  return `fe80::${words.map((w) => w.toString(16)).join(':')}`;
}

const stats = (n: number) => ({
  'rx-bytes': 1500 * n,
  'rx-packets': n,
  'rx-errs': 0,
  'rx-dropped': 0,
  'tx-bytes': 900 * n,
  'tx-packets': n,
  'tx-errs': 0,
  'tx-dropped': 0,
});

export function networkInterfaces(sim: SimContext, vm: VmState, run: RunState): unknown[] {
  const mac = macOf(vm);
  const hasLease = run.staticIpv4 || Date.now() >= run.startedAt + sim.timing.agentStartMs + sim.timing.ipv4AfterAgentMs;
  const eth0Addresses = [...(hasLease ? [{ 'ip-address': run.ipv4, 'ip-address-type': 'ipv4', prefix: run.ipv4Prefix ?? 16 }] : []), { 'ip-address': linkLocal(mac), 'ip-address-type': 'ipv6', prefix: 64 }];
  return [
    {
      name: 'lo',
      'hardware-address': '00:00:00:00:00:00',
      'ip-addresses': [
        { 'ip-address': '127.0.0.1', 'ip-address-type': 'ipv4', prefix: 8 },
        { 'ip-address': '::1', 'ip-address-type': 'ipv6', prefix: 128 },
      ],
      statistics: stats(12),
    },
    { name: 'eth0', 'hardware-address': mac, 'ip-addresses': eth0Addresses, statistics: stats(hasLease ? 240 : 8) },
  ];
}
