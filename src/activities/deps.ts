import type { Client } from '@temporalio/client';
import type { NetbirdClient } from '../clients/netbird';
import type { PveClient } from '../clients/pve';
import type { SftpTarget } from '../clients/sftp';
import type { CredentialKeys } from '../credentials/credentialKeys';
import type { AddressPoolSpec } from '../domain/addressPool';
import type { CloneLimits } from '../domain/cloneSlotKeys';
import type { StandingGroups } from './netbird/standingGroups';
import type { UserGroupWriter } from './netbird/userGroups';

/** What the activities need from the world; built once in worker.ts (or by a test). */
export interface ActivityDeps {
  pve: PveClient;
  /** The SFTP endpoint of a Proxmox node (its snippets directory), host key pinned. */
  sftpTarget(node: string): SftpTarget;
  netbird: NetbirdClient;
  /** This process's NetBird group caches and per-user write queues (netbird/standingGroups.ts, userGroups.ts). */
  netbirdGroups: { standingGroups: StandingGroups; userGroups: UserGroupWriter };
  /**
   * Temporal itself, for the few activities that read visibility (clusterSync finds the managed requests there), and
   * this pveflow instance's task queue: several instances may share a namespace, each sees only its own requests.
   */
  temporal: { client: Client; taskQueue: string };
  settings: ActivitySettings;
  /** The per-request keys guest credentials are sealed with (shared with the API, destroyed at reveal and end). */
  credentialKeys: CredentialKeys;
}

export interface ActivitySettings {
  pool: string;
  /** VMIDs pveflow allocates from (keeps clear of hand-made VMs). */
  vmidRange: { min: number; max: number };
  templateVmid: number;
  bridge: string;
  vlan?: number;
  fullCloneDefault: boolean;
  /** Clones at once per node and per storage across all workers (PVE_CLONE_LIMIT_*); unset: no limit. */
  cloneLimits?: CloneLimits;
  /** Static addresses from PVE_IP_POOL; unset: the VMs take DHCP. */
  addressPool?: AddressPoolSpec;
  /** Where full clones copy the template's disks (PVE_TARGET_STORAGE); unset: each disk stays on its storage. */
  targetStorage?: string;
  /** Set when VMs are made HA resources after their start (PVE_HA / PVE_HA_GROUP); undefined: no HA. */
  ha?: { group?: string };
  nodeSelector?: string[];
  snippetsStorage: string;
  snippetsDir: string;
  /** What a VM's `netbird up --management-url` points at. */
  netbirdManagementUrl: string;
  setupKeyTtlSeconds: number;
  /** A consultant without a NetBird user: reported on the request (`report`) or a failed build (`fail`). */
  missingConsultant: 'report' | 'fail';
  guestIpWaitSeconds: number;
  peerWaitSeconds: number;
  /** Poll bounds for waits inside activities (the guest agent, the NetBird peer, Proxmox tasks). */
  pollMinMs: number;
  pollMaxMs: number;
}
