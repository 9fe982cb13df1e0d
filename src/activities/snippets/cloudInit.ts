import { stringify } from 'yaml';

export interface CloudInitInput {
  hostname: string;
  sshKeys: string[];
  netbird: { managementUrl: string; setupKey: string };
}

/**
 * The cloud-init user-data pveflow drops on the node: hostname, the requester's SSH keys, the guest agent (the
 * build waits on it for the IP), and NetBird joined with a one-off setup key. Rendered as YAML by a YAML library,
 * never by string concatenation, so no request field can inject cloud-init directives.
 */
export function renderUserData({ hostname, sshKeys, netbird }: CloudInitInput): string {
  const doc = {
    hostname,
    manage_etc_hosts: true,
    ssh_authorized_keys: sshKeys,
    package_update: true,
    packages: ['qemu-guest-agent', 'curl', 'ca-certificates'],
    runcmd: [
      ['systemctl', 'enable', '--now', 'qemu-guest-agent'],
      ['sh', '-c', 'command -v netbird >/dev/null || curl -fsSL https://pkgs.netbird.io/install.sh | sh'],
      ['netbird', 'up', '--management-url', netbird.managementUrl, '--setup-key', netbird.setupKey, '--hostname', hostname],
    ],
  };
  return `#cloud-config\n${stringify(doc, { lineWidth: 0 })}`;
}
