import { defaultClusterSeed } from '../seed';
import type { ClusterSeed, NodeSeed, VmSeed } from '../seed';

/**
 * A cluster of `nodes` nodes with `vms` guests spread over them (plus the default template 9000), for scale
 * tests, the benchmark and big standalone worlds. Deterministic: the same options give the same cluster. Every
 * fourth VM runs; every other one is in the `pveflow` pool; disks live on the shared `ceph` storage.
 */
export interface GenerateSeedOptions {
  nodes: number;
  vms: number;
  tokenSecret: string;
  rootTokenSecret?: string;
  /** First VMID of the generated guests (default 10000, clear of the template 9000). */
  firstVmid?: number;
}

const GiB = 1024 ** 3;

export function generateSeed(opts: GenerateSeedOptions): ClusterSeed {
  if (opts.nodes < 1) throw new Error('a cluster needs at least one node');
  const base = defaultClusterSeed({ tokenSecret: opts.tokenSecret, rootTokenSecret: opts.rootTokenSecret });
  const nodes: NodeSeed[] = Array.from({ length: opts.nodes }, (_, i) => ({
    name: `pve${i + 1}`,
    status: 'online',
    maxcpu: 64,
    cpu: ((i * 37) % 80) / 100,
    maxmem: 512 * GiB,
    mem: (64 + ((i * 53) % 300)) * GiB,
    maxdisk: 100 * GiB,
    disk: 12 * GiB,
    uptime: 864_000 + i * 3600,
  }));
  const first = opts.firstVmid ?? 10_000;
  const vms: VmSeed[] = Array.from({ length: opts.vms }, (_, i) => {
    const vmid = first + i;
    const hex = (n: number) => n.toString(16).toUpperCase().padStart(2, '0');
    return {
      vmid,
      node: nodes[i % nodes.length]!.name,
      ...(i % 2 === 0 ? { pool: 'pveflow' } : {}),
      running: i % 4 === 0,
      config: {
        name: `vm-${vmid}`,
        cores: 1 + (i % 4),
        sockets: 1,
        memory: String(1024 * (1 + (i % 8))),
        agent: '1',
        ostype: 'l26',
        scsihw: 'virtio-scsi-pci',
        scsi0: `ceph:vm-${vmid}-disk-0,size=${8 + (i % 5) * 8}G`,
        net0: `virtio=BC:24:11:${hex((vmid >> 16) & 0xff)}:${hex((vmid >> 8) & 0xff)}:${hex(vmid & 0xff)},bridge=vmbr0`,
        ...(i % 3 === 0 ? { tags: 'generated;k8s' } : {}),
      },
    };
  });
  const ceph = base.storages.find((s) => s.id === 'ceph')!;
  ceph.total = Math.max(ceph.total, opts.vms * 40 * GiB + 4_000 * GiB);
  return { ...base, nodes, vms: [...base.vms, ...vms] };
}
