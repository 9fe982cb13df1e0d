import { createHash, randomUUID } from 'node:crypto';
import { sleep } from '../timing';
import { pveDie, paramError } from '../errors';
import type { Route, SimContext } from '../context';
import type { Identity } from '../permissions';
import type { NodeSeed, StorageSeed } from '../seed';
import { nodeHealth } from '../nodeHealth';
import { nodeHealthCache, vmResource } from './views';

/** Cluster-wide read endpoints: version, nodes, resources, nextid, pools. */
const VERSION = { version: '9.1.3', release: '9.1', repoid: 'e5010dc2b4f1a7c3' };

function nodeMetrics(n: NodeSeed): Record<string, unknown> {
  return { cpu: n.cpu, maxcpu: n.maxcpu, mem: n.mem, maxmem: n.maxmem, disk: n.disk, maxdisk: n.maxdisk, uptime: n.uptime };
}

function storageResource(sim: SimContext, s: StorageSeed, node: string): Record<string, unknown> {
  return {
    id: `storage/${node}/${s.id}`,
    type: 'storage',
    storage: s.id,
    node,
    plugintype: s.type,
    status: nodeHealth(sim, node).online ? 'available' : 'unknown',
    shared: s.shared ? 1 : 0,
    content: s.content.join(','),
    maxdisk: s.total,
    disk: s.total - sim.capacity.avail(s, node),
  };
}

function nodeStatus(sim: SimContext, n: NodeSeed): 'online' | 'offline' {
  return nodeHealth(sim, n.name).online ? 'online' : 'offline';
}

function visibleVms(sim: SimContext, identity: Identity) {
  return [...sim.cluster.vms.values()].filter((vm) => sim.perms.has(identity, `/vms/${vm.vmid}`, ['VM.Audit']));
}

export const clusterRoutes: Route[] = [
  { method: 'GET', path: '/version', handle: () => VERSION },
  {
    method: 'GET',
    path: '/nodes',
    handle: ({ identity }, sim) =>
      [...sim.cluster.nodes.values()].map((n) => ({
        node: n.name,
        id: `node/${n.name}`,
        type: 'node',
        status: nodeStatus(sim, n),
        level: '',
        ssl_fingerprint: fingerprintOf(n.name),
        ...(nodeStatus(sim, n) === 'online' && sim.perms.has(identity, `/nodes/${n.name}`, ['Sys.Audit']) ? nodeMetrics(n) : {}),
      })),
  },
  {
    method: 'GET',
    path: '/nodes/{node}/status',
    permission: ({ identity, params }, sim) => sim.perms.check(identity, `/nodes/${params.str('node')}`, ['Sys.Audit']),
    handle: ({ params }, sim) => {
      const n = sim.cluster.nodes.get(params.req('node'))!;
      return {
        uptime: n.uptime,
        idle: 0,
        loadavg: [(n.cpu * n.maxcpu).toFixed(2), '0.20', '0.25'],
        kversion: 'Linux 6.8.12-4-pve #1 SMP PREEMPT_DYNAMIC PMX 6.8.12-4',
        'current-kernel': { sysname: 'Linux', release: '6.8.12-4-pve', version: '#1 SMP PREEMPT_DYNAMIC PMX 6.8.12-4', machine: 'x86_64' },
        'boot-info': { mode: 'efi', secureboot: 0 },
        cpuinfo: { model: 'AMD EPYC 7313P 16-Core Processor', cpus: n.maxcpu, cores: n.maxcpu / 2, sockets: 1, mhz: '3000.000', hvm: '1', flags: 'fpu vme de pse', user_hz: 100 },
        cpu: n.cpu,
        wait: 0.001,
        memory: { total: n.maxmem, used: n.mem, free: n.maxmem - n.mem, available: n.maxmem - n.mem },
        ksm: { shared: 0 },
        swap: { total: 8 * 1024 ** 3, used: 0, free: 8 * 1024 ** 3 },
        pveversion: `pve-manager/${VERSION.version}/${VERSION.repoid}`,
        rootfs: { total: n.maxdisk, used: n.disk, free: n.maxdisk - n.disk, avail: n.maxdisk - n.disk },
      };
    },
  },
  {
    method: 'GET',
    path: '/cluster/resources',
    handle: ({ identity, params }, sim) => {
      const type = params.str('type');
      const now = Date.now();
      const out: Record<string, unknown>[] = [];
      const health = nodeHealthCache(sim);
      if (!type || type === 'vm') for (const vm of visibleVms(sim, identity)) out.push(vmResource(sim, vm, identity, now, health));
      if (!type || type === 'node') {
        for (const n of sim.cluster.nodes.values()) {
          const status = nodeStatus(sim, n);
          out.push({
            id: `node/${n.name}`,
            type: 'node',
            node: n.name,
            status,
            level: '',
            ...(status === 'online' && sim.perms.has(identity, `/nodes/${n.name}`, ['Sys.Audit']) ? nodeMetrics(n) : {}),
          });
        }
      }
      if (!type || type === 'storage') {
        for (const s of sim.cluster.storages.values()) {
          if (!sim.perms.has(identity, `/storage/${s.id}`, ['Datastore.Audit'])) continue;
          for (const n of sim.cluster.nodes.values()) if (sim.cluster.storageEnabledOn(s, n.name)) out.push(storageResource(sim, s, n.name));
        }
      }
      if (!type || type === 'pool') {
        for (const p of sim.cluster.pools.values()) {
          if (sim.perms.has(identity, `/pool/${p.poolid}`, ['Pool.Audit'])) out.push({ id: `/pool/${p.poolid}`, type: 'pool', pool: p.poolid });
        }
      }
      return out;
    },
  },
  {
    method: 'GET',
    path: '/cluster/status',
    permission: ({ identity }, sim) => sim.perms.check(identity, '/', ['Sys.Audit']),
    handle: (_req, sim) => clusterStatus(sim),
  },
  {
    method: 'GET',
    path: '/cluster/nextid',
    handle: ({ params }, sim) => {
      const wanted = params.int('vmid');
      if (wanted !== undefined) {
        if (sim.cluster.vms.has(wanted)) throw paramError({ vmid: `VM ${wanted} already exists` });
        // No reservation either way: another client may take the id it just confirmed free.
        const raced = sim.faults.take('nextidRace');
        if (raced) raceForId(sim, wanted, raced.node);
        return String(wanted);
      }
      const id = sim.cluster.lowestFreeVmid();
      const race = sim.faults.take('nextidRace');
      if (race) raceForId(sim, id, race.node);
      return String(id);
    },
  },
  {
    method: 'GET',
    path: '/pools',
    handle: ({ identity, params }, sim) => {
      const poolid = params.str('poolid');
      if (poolid === undefined) {
        return [...sim.cluster.pools.values()].filter((p) => sim.perms.has(identity, `/pool/${p.poolid}`, ['Pool.Audit'])).map((p) => ({ poolid: p.poolid, ...(p.comment ? { comment: p.comment } : {}) }));
      }
      const pool = sim.cluster.pools.get(poolid);
      if (!pool) throw pveDie(`pool '${poolid}' does not exist`);
      const type = params.str('type');
      const now = Date.now();
      const members: Record<string, unknown>[] = [];
      if (!type || type === 'qemu') {
        for (const vm of sim.cluster.vms.values()) if (vm.pool === poolid) members.push(vmResource(sim, vm, identity, now));
      }
      if (!type || type === 'storage') {
        for (const sid of pool.storages) {
          const s = sim.cluster.storages.get(sid);
          if (!s) continue;
          for (const n of sim.cluster.nodes.values()) if (sim.cluster.storageEnabledOn(s, n.name)) members.push(storageResource(sim, s, n.name));
        }
      }
      return [{ poolid, ...(pool.comment ? { comment: pool.comment } : {}), members }];
    },
  },
];

/**
 * The nextid race made certain: another client, which asked a moment earlier and got the same answer, creates
 * VM `id` now. Its placeholder (`lock: create`) exists at once, so a clone to `id` on that node fails early with
 * `config file already exists`, and one on another node fails in its worker (pmxcfs `File exists`).
 */
function raceForId(sim: SimContext, id: number, node?: string): void {
  const on = node ?? [...sim.cluster.nodes.keys()].find((n) => nodeHealth(sim, n).online) ?? [...sim.cluster.nodes.keys()][0]!;
  const vm = { vmid: id, node: on, config: { lock: 'create' } as Record<string, string>, statusLog: [{ at: Date.now(), status: 'stopped' as const }] };
  sim.cluster.addVm(vm);
  sim.tasks.start({
    node: on,
    type: 'qmcreate',
    id: String(id),
    identity: { userid: 'root@pam', privsep: false },
    worker: async () => {
      await sleep(sim.timing.createMs);
      vm.config = { name: `other-client-${id}`, memory: '512', cores: '1', smbios1: `uuid=${randomUUID()}` };
    },
  });
}

/**
 * pvecm's view (`PVE::API2::ClusterConfig` status): one `cluster` entry, then one entry per node in corosync order.
 * Booleans are 0/1 as Perl's JSON encoder writes them. The node answering is the first one online (pveproxy
 * answers this call itself, it is not proxied); without quorum the cluster is not `quorate`.
 */
function clusterStatus(sim: SimContext): Record<string, unknown>[] {
  const nodes = [...sim.cluster.nodes.values()];
  const online = nodes.map((n) => nodeHealth(sim, n.name).online);
  const local = nodes.find((_, i) => online[i])?.name;
  const quorate = online.filter(Boolean).length * 2 > nodes.length && !sim.faults.peek('quorumLoss', { node: local });
  return [
    { type: 'cluster', id: 'cluster', name: sim.cluster.clusterName, nodes: nodes.length, quorate: quorate ? 1 : 0, version: nodes.length },
    ...nodes.map((n, i) => ({
      type: 'node',
      id: `node/${n.name}`,
      name: n.name,
      nodeid: i + 1,
      ip: n.ip ?? `10.10.0.${i + 1}`,
      online: online[i] ? 1 : 0,
      local: n.name === local ? 1 : 0,
      level: '',
    })),
  ];
}

/** A stable, plausible SHA-256 fingerprint per node name (the simulator has one certificate for all nodes). */
function fingerprintOf(node: string): string {
  const hex = createHash('sha256').update(`pveflow-sim-node-${node}`).digest('hex').toUpperCase();
  return hex.match(/../g)!.join(':');
}
