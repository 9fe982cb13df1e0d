import { stringify } from 'yaml';
import type { CloudInitChoices } from '../../domain/cloudInitChoices';
import { mergeUserData } from './userDataMerge';

export interface CloudInitInput {
  hostname: string;
  sshKeys: string[];
  netbird: { managementUrl: string; setupKey: string };
  /** SHA-512 crypt hashes of the generated passwords (never the passwords). */
  passwordHashes: { user: string; userHash: string; rootHash: string };
  /** The request's packages, commands, files and cloud-config fragment, merged under pveflow's keys. */
  choices?: CloudInitChoices;
}

/**
 * The cloud-init user-data pveflow drops on the node: hostname, the requester's SSH keys, the generated logins (as
 * SHA-512 crypt hashes), the guest agent (the build waits on it for the IP), and NetBird joined with a one-off setup
 * key. Password logins over SSH stay off: the passwords are for the console and sudo. Rendered as YAML by a YAML library,
 * never by string concatenation, so no request field can inject cloud-init directives.
 *
 * Written against cloud-init's own schema (`cloud-init schema -c`, test/cloud-init-schema.test.ts): `chpasswd.users`
 * needs cloud-init ≥ 22.3 and takes `type: hash` in lower case only (an unknown type leaves the root password unset
 * on a real guest), and a key list may not be empty, so a request without SSH keys has no `ssh_authorized_keys`.
 */
export function renderUserData({ hostname, sshKeys, netbird, passwordHashes, choices }: CloudInitInput): string {
  const keys = sshKeys.length > 0 ? { ssh_authorized_keys: sshKeys } : {};
  const doc = {
    hostname,
    manage_etc_hosts: true,
    ...keys,
    users: ['default', { name: passwordHashes.user, groups: ['sudo'], shell: '/bin/bash', lock_passwd: false, passwd: passwordHashes.userHash, ...keys }],
    chpasswd: { expire: false, users: [{ name: 'root', password: passwordHashes.rootHash, type: 'hash' }] },
    ssh_pwauth: false,
    package_update: true,
    packages: ['qemu-guest-agent', 'curl', 'ca-certificates'],
    runcmd: [
      ['systemctl', 'enable', '--now', 'qemu-guest-agent'],
      ['sh', '-c', 'command -v netbird >/dev/null || curl -fsSL https://pkgs.netbird.io/install.sh | sh'],
      ['netbird', 'up', '--management-url', netbird.managementUrl, '--setup-key', netbird.setupKey, '--hostname', hostname],
    ],
  };
  return `#cloud-config\n${stringify(mergeUserData(doc, choices), { lineWidth: 0 })}`;
}
