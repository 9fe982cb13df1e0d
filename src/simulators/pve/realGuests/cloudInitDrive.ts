import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { VmConfig } from '../cluster';
import type { CloudInitSnippets } from '../guestAgent';
import { splitPropertyString } from '../propertyString';

const run = promisify(execFile);

/**
 * The NoCloud drive qemu-server writes at every start (reference proxmox-behaviour.md §4.13.1, `Cloudinit.pm`):
 * an ISO 9660 image labelled `cidata` with `user-data`, `network-config`, `meta-data` and `vendor-data`. Each file
 * is the VM's `cicustom` snippet byte for byte when one is set, else what PVE generates from the VM's config; the
 * generated meta-data's instance id is the SHA-1 of user-data and network-config, so changed bytes make cloud-init
 * treat the next boot as a new instance.
 */
export interface CloudInitFiles {
  'user-data': Buffer;
  'network-config': Buffer;
  'meta-data': Buffer;
  'vendor-data': Buffer;
}

/**
 * The four files for `config`. `resolver` stands for the node's /etc/resolv.conf, which PVE falls back to when the
 * VM names no `nameserver`/`searchdomain`.
 */
export function cloudInitFiles(config: VmConfig, snippets: CloudInitSnippets, resolver: { nameservers: string[]; searchDomains: string[] }): CloudInitFiles {
  const user = snippets.user ?? Buffer.from(generatedUserData(config));
  const network = snippets.network ?? Buffer.from(generatedNetworkConfig(config, resolver));
  const meta = snippets.meta ?? Buffer.from(`instance-id: ${createHash('sha1').update(user).update(network).digest('hex')}\n`);
  return { 'user-data': user, 'network-config': network, 'meta-data': meta, 'vendor-data': snippets.vendor ?? Buffer.alloc(0) };
}

/** Writes the files into `dir` and makes `iso` of them as qemu-server does (`genisoimage -iso-level 3 -R -V cidata`). */
export async function writeCloudInitIso(files: CloudInitFiles, dir: string, iso: string): Promise<void> {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  for (const [name, bytes] of Object.entries(files)) writeFileSync(join(dir, name), bytes);
  rmSync(iso, { force: true });
  await run('genisoimage', ['-quiet', '-iso-level', '3', '-R', '-V', 'cidata', '-o', iso, dir]);
}

/** PVE's user-data without a `cicustom` user snippet (`cloudinit_userdata`): the `ci*` options and the SSH keys. */
function generatedUserData(config: VmConfig): string {
  const name = config.name ?? 'debian';
  let text = '#cloud-config\n';
  text += `hostname: ${name.split('.')[0]}\nmanage_etc_hosts: true\n`;
  if (config.searchdomain || name.includes('.')) text += `fqdn: ${name.includes('.') ? name : `${name}.${config.searchdomain!.split(/[ ,]/)[0]}`}\n`;
  if (config.ciuser) text += `user: ${config.ciuser}\n`;
  if (config.cipassword) text += `password: ${config.cipassword}\n`;
  if (config.sshkeys) {
    const keys = decodeURIComponent(config.sshkeys)
      .split('\n')
      .filter((k) => k.trim());
    text += 'ssh_authorized_keys:\n' + keys.map((k) => `  - ${k}\n`).join('');
  }
  text += 'chpasswd:\n  expire: False\n';
  text += 'users:\n  - default\n';
  text += `package_upgrade: ${config.ciupgrade === '0' ? 'false' : 'true'}\n`;
  return text;
}

/** `nocloud_network_v1`: one physical entry per `netN` with an `ipconfigN`, then the resolver. */
function generatedNetworkConfig(config: VmConfig, resolver: { nameservers: string[]; searchDomains: string[] }): string {
  let text = 'version: 1\nconfig:\n';
  const ids = Object.keys(config)
    .map((k) => /^net(\d+)$/.exec(k)?.[1])
    .filter((id): id is string => id !== undefined && config[`ipconfig${id}`] !== undefined)
    .sort((a, b) => Number(a) - Number(b));
  for (const id of ids) {
    const nic = splitPropertyString(config[`net${id}`]!, 'model');
    const mac = nic.macaddr ?? Object.values(nic).find((v) => /^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/.test(v));
    if (!mac) throw new Error(`network interface 'net${id}' has no mac address`);
    const ipconfig = splitPropertyString(config[`ipconfig${id}`]!, 'ip');
    text += `    - type: physical\n      name: eth${id}\n      mac_address: '${mac.toLowerCase()}'\n      subnets:\n`;
    const ip = ipconfig.ip;
    if (ip === 'dhcp') text += '      - type: dhcp4\n';
    else if (ip) {
      const [address, prefix] = ip.split('/');
      text += `      - type: static\n        address: '${address}'\n        netmask: '${netmask(Number(prefix ?? 32))}'\n`;
      if (ipconfig.gw) text += `        gateway: '${ipconfig.gw}'\n`;
    }
    const ip6 = ipconfig.ip6;
    if (ip6 === 'dhcp') text += '      - type: dhcp6\n';
    else if (ip6 === 'auto') text += '      - type: ipv6_slaac\n';
    else if (ip6) {
      text += `      - type: static6\n        address: '${ip6}'\n`;
      if (ipconfig.gw6) text += `        gateway: '${ipconfig.gw6}'\n`;
    }
  }
  const nameservers = config.nameserver ? config.nameserver.split(/[ ,;]+/).filter(Boolean) : resolver.nameservers;
  const searchDomains = config.searchdomain ? config.searchdomain.split(/[ ,;]+/).filter(Boolean) : resolver.searchDomains;
  if (nameservers.length || searchDomains.length) {
    text += '    - type: nameserver\n';
    if (nameservers.length) text += '      address:\n' + nameservers.map((n) => `      - '${n}'\n`).join('');
    if (searchDomains.length) text += '      search:\n' + searchDomains.map((d) => `      - '${d}'\n`).join('');
  }
  return text;
}

function netmask(prefix: number): string {
  const bits = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return [24, 16, 8, 0].map((shift) => (bits >>> shift) & 0xff).join('.');
}
