/**
 * The starting state of a simulated cluster: nodes, storages, pools, guests, users, API tokens and ACLs, all
 * plain JSON so a test can take `defaultClusterSeed()` and change what it needs.
 */
export interface NodeSeed {
  name: string;
  status?: 'online' | 'offline';
  maxcpu: number;
  /** Fraction of all CPUs busy (0..1). */
  cpu: number;
  /** Bytes. */
  maxmem: number;
  mem: number;
  maxdisk: number;
  disk: number;
  uptime: number;
  /** The address `/cluster/status` reports (corosync's ring address); `10.10.0.<n>` when omitted. */
  ip?: string;
  /** The node's Linux bridges (`/etc/network/interfaces`); `vmbr0` alone when omitted. */
  bridges?: string[];
}

export interface StorageSeed {
  id: string;
  type: 'dir' | 'lvmthin' | 'lvm' | 'rbd' | 'nfs' | 'zfspool' | 'cephfs';
  content: string[];
  shared: boolean;
  /** Nodes the storage is enabled on; all nodes when omitted. */
  nodes?: string[];
  /** Bytes, per node for local storages. */
  total: number;
  used: number;
}

export interface PoolSeed {
  poolid: string;
  comment?: string;
  storages?: string[];
}

export interface VmSeed {
  vmid: number;
  node: string;
  pool?: string;
  /** Config keys as `qm config` shows them (numbers are stored as their text). */
  config: Record<string, string | number>;
  running?: boolean;
}

export interface UserSeed {
  userid: string;
  enable?: boolean;
}

export interface TokenSeed {
  /** `user@realm!name`. */
  tokenid: string;
  secret: string;
  /** Privilege separation: the token's own ACLs intersected with its user's. */
  privsep: boolean;
}

export interface AclSeed {
  path: string;
  /** A user id (`user@realm`) or a token id (`user@realm!name`). */
  subject: string;
  role: string;
  /** Whether the ACL also applies below `path` (PVE's default is 1). */
  propagate?: boolean;
}

export interface ClusterSeed {
  /** The corosync cluster name `/cluster/status` reports; `pveflow-sim` when omitted. */
  clusterName?: string;
  nodes: NodeSeed[];
  /** Custom roles (`pveum role add <name> --privs ...`), beside the built-in ones. */
  roles?: Record<string, string[]>;
  storages: StorageSeed[];
  pools: PoolSeed[];
  vms: VmSeed[];
  users: UserSeed[];
  tokens: TokenSeed[];
  acls: AclSeed[];
  /** The simulated guests' DHCP range: leases are `<prefix>.<n>` within a /16. */
  dhcpPrefix?: string;
}

const GiB = 1024 ** 3;

export const ROOT_TOKEN_ID = 'root@pam!pveflow-tests';

/**
 * What the default token holds beyond its built-in roles: `Pool.Allocate` on the pool, and `Sys.Audit` on `/`
 * without propagation (so that it reaches no VM outside the pool and no node's metrics). pveflow needs neither
 * (docs/operations.md's role, src/domain/pveflowPrivileges.ts); they make the default token the over-granted kind
 * operators often have, which the least-privilege test does not rely on. `Sys.AccessNetwork` on `/nodes` is one
 * pveflow does need (an image import's download).
 */
export const PVEFLOW_EXTRA_ROLES: Record<string, string[]> = {
  PVEflowPool: ['Pool.Allocate'],
  PVEflowAudit: ['Sys.Audit'],
  /** What an image import's download needs on the node (the pveflow role's Sys.AccessNetwork). */
  PVEflowNetwork: ['Sys.AccessNetwork'],
};

export function defaultClusterSeed(opts: { tokenSecret: string; rootTokenSecret?: string }): ClusterSeed {
  const node = (name: string, load: number, memUsed: number): NodeSeed => ({
    name,
    status: 'online',
    maxcpu: 32,
    cpu: load,
    maxmem: 256 * GiB,
    mem: memUsed * GiB,
    maxdisk: 100 * GiB,
    disk: 12 * GiB,
    uptime: 864_000,
  });
  const automationAcls = (subject: string): AclSeed[] => [
    { path: '/pool/pveflow', subject, role: 'PVEVMAdmin' },
    { path: '/storage/local', subject, role: 'PVEDatastoreAdmin' },
    { path: '/storage/local-lvm', subject, role: 'PVEDatastoreUser' },
    { path: '/storage/ceph', subject, role: 'PVEDatastoreUser' },
    { path: '/sdn/zones/localnetwork', subject, role: 'PVESDNUser' },
    { path: '/nodes', subject, role: 'PVEflowNetwork' },
    { path: '/pool/pveflow', subject, role: 'PVEflowPool' },
    { path: '/', subject, role: 'PVEflowAudit', propagate: false },
  ];
  return {
    nodes: [node('pve1', 0.18, 96), node('pve2', 0.07, 40), node('pve3', 0.35, 150)],
    storages: [
      { id: 'local', type: 'dir', content: ['backup', 'iso', 'vztmpl', 'snippets', 'import'], shared: false, total: 100 * GiB, used: 12 * GiB },
      { id: 'local-lvm', type: 'lvmthin', content: ['images', 'rootdir'], shared: false, total: 800 * GiB, used: 120 * GiB },
      { id: 'ceph', type: 'rbd', content: ['images', 'rootdir'], shared: true, total: 12_000 * GiB, used: 2_100 * GiB },
    ],
    pools: [{ poolid: 'pveflow', comment: 'VMs managed by pveflow' }],
    roles: structuredClone(PVEFLOW_EXTRA_ROLES),
    vms: [
      {
        vmid: 9000,
        node: 'pve1',
        pool: 'pveflow',
        config: {
          name: 'debian-12-cloudinit',
          template: 1,
          agent: '1',
          boot: 'order=scsi0;ide2;net0',
          cores: 2,
          sockets: 1,
          memory: '2048',
          ostype: 'l26',
          scsihw: 'virtio-scsi-pci',
          scsi0: 'ceph:base-9000-disk-0,size=4G',
          ide2: 'ceph:vm-9000-cloudinit,media=cdrom',
          net0: 'virtio=BC:24:11:90:00:01,bridge=vmbr0',
          serial0: 'socket',
          vga: 'serial0',
          smbios1: 'uuid=8c3f1e1a-9000-4a59-9d3e-000000009000',
          vmgenid: '0b5f2a44-9000-4c1e-8a32-000000009000',
          meta: 'creation-qemu=9.0.2,ctime=1720000000',
        },
      },
    ],
    users: [{ userid: 'root@pam' }, { userid: 'pveflow@pve' }],
    tokens: [
      { tokenid: 'pveflow@pve!automation', secret: opts.tokenSecret, privsep: true },
      { tokenid: ROOT_TOKEN_ID, secret: opts.rootTokenSecret ?? `${opts.tokenSecret}-root`, privsep: false },
    ],
    acls: [...automationAcls('pveflow@pve'), ...automationAcls('pveflow@pve!automation')],
    dhcpPrefix: '10.20',
  };
}
