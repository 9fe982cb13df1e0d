import type { ApiRequest, Route, SimContext } from '../context';
import { assertRootOnly } from '../context';
import { configMissingText, configNotFoundOnNodeText } from '../errors';
import { assertAgentAvailable, networkInterfaces, readCloudInitSnippets, scheduleGuestBoot } from '../guestAgent';
import { sleep } from '../timing';
import { loadVm } from './qemuCommon';
import { vmCpus, vmMaxdisk, vmMaxmem } from './views';

/**
 * Power, status and guest agent (reference §4.11–4.13). Start/stop/shutdown are tasks whose checks run in the
 * worker under the config flock — `VM 100 already running`, `VM is locked (clone)`, lock timeouts and missing
 * snippets come back as failed tasks, not HTTP errors — and the power state changes when the task ends.
 */
const vmPerm = (privs: string[], any = false) => ({ identity, params }: ApiRequest, sim: SimContext) =>
  sim.perms.check(identity, `/vms/${params.str('vmid')}`, privs, any);

/** Runs `body` under the VM's config flock inside a worker; a timeout fails the task with PVE's text. */
async function withFlock<T>(sim: SimContext, node: string, vmid: number, body: () => Promise<T>): Promise<T> {
  const release = await sim.flocks.acquire(node, vmid, 'exclusive', sim.timing.flockTimeoutMs);
  try {
    return await body();
  } finally {
    release();
  }
}

function lockError(req: ApiRequest, lock: string | undefined, allowed: string[] = []): Error | undefined {
  if (lock === undefined || req.params.bool('skiplock') || allowed.includes(lock)) return undefined;
  return new Error(`VM is locked (${lock})`);
}

const start: Route = {
  method: 'POST',
  path: '/nodes/{node}/qemu/{vmid}/status/start',
  permission: vmPerm(['VM.PowerMgmt']),
  handle: (req, sim) => {
    assertRootOnly(req, 'skiplock', 'migratedfrom', 'migration_type', 'migration_network', 'stateuri', 'targetstorage', 'force-cpu', 'nets-host-mtu', 'with-conntrack-state');
    const node = req.params.req('node');
    const vmid = Number(req.params.req('vmid'));
    return sim.tasks.start({
      node, type: 'qmstart', id: String(vmid), identity: req.identity,
      worker: async (ctx) => {
        if (!sim.cluster.vmOnNode(node, vmid)) throw new Error(configMissingText(node, vmid));
        await withFlock(sim, node, vmid, async () => {
          const vm = sim.cluster.vmOnNode(node, vmid);
          if (!vm) throw new Error(configMissingText(node, vmid));
          const locked = lockError(req, vm.config.lock);
          if (locked) throw locked;
          if (vm.config.template === '1') throw new Error("you can't start a vm if it's a template");
          if (vm.run) throw new Error(`VM ${vmid} already running`);
          const { userData } = readCloudInitSnippets(sim, vm);
          if (vm.config.cicustom || vm.config.ide2?.includes('cloudinit')) ctx.log('generating cloud-init ISO');
          await sleep(sim.timing.startMs);
          ctx.failIfInjected();
          const run = sim.cluster.markRunning(vm, Date.now());
          scheduleGuestBoot(sim, vm, run, userData);
        });
      },
    }).upid;
  },
};

function stopLike(action: 'stop' | 'shutdown'): Route {
  return {
    method: 'POST',
    path: `/nodes/{node}/qemu/{vmid}/status/${action}`,
    permission: vmPerm(['VM.PowerMgmt']),
    handle: (req, sim) => {
      assertRootOnly(req, 'skiplock', 'migratedfrom');
      const node = req.params.req('node');
      const vmid = Number(req.params.req('vmid'));
      return sim.tasks.start({
        node, type: action === 'stop' ? 'qmstop' : 'qmshutdown', id: String(vmid), identity: req.identity,
        worker: async (ctx) => {
          if (!sim.cluster.vmOnNode(node, vmid)) throw new Error(configNotFoundOnNodeText(node, vmid));
          await withFlock(sim, node, vmid, async () => {
            const vm = sim.cluster.vmOnNode(node, vmid);
            if (!vm) throw new Error(configNotFoundOnNodeText(node, vmid));
            const locked = lockError(req, vm.config.lock);
            if (locked) throw locked;
            if (!vm.run) return; // already stopped: a no-op that ends OK
            if (action === 'shutdown') {
              const timeoutMs = (req.params.int('timeout') ?? 60) * 1000;
              if (sim.timing.shutdownMs > timeoutMs) {
                await sleep(timeoutMs);
                if (!req.params.bool('forceStop')) throw new Error('VM quit/powerdown failed - got timeout');
              } else {
                await sleep(sim.timing.shutdownMs);
              }
            } else {
              await sleep(sim.timing.stopMs);
            }
            ctx.failIfInjected();
            sim.cluster.markStopped(vm, Date.now());
          });
        },
      }).upid;
    },
  };
}

const statusCurrent: Route = {
  method: 'GET',
  path: '/nodes/{node}/qemu/{vmid}/status/current',
  permission: vmPerm(['VM.Audit']),
  handle: ({ params }, sim) => {
    const vm = loadVm(sim, params.req('node'), Number(params.req('vmid')));
    const run = vm.run;
    const status = run ? 'running' : 'stopped';
    const maxmem = vmMaxmem(vm);
    return {
      vmid: vm.vmid,
      name: vm.config.name ?? `VM ${vm.vmid}`,
      status,
      qmpstatus: status,
      cpus: vmCpus(vm),
      cpu: run ? 0.02 : 0,
      maxmem,
      mem: run ? Math.floor(maxmem * 0.3) : 0,
      memhost: run ? Math.floor(maxmem * 0.32) : 0,
      maxdisk: vmMaxdisk(vm),
      disk: 0,
      uptime: run ? Math.floor((Date.now() - run.startedAt) / 1000) : 0,
      netin: 0, netout: 0, diskread: 0, diskwrite: 0,
      ha: { managed: 0 },
      ...(run ? { pid: run.pid, 'running-machine': 'pc-i440fx-9.0+pve0', 'running-qemu': '9.0.2' } : {}),
      ...(vm.config.agent !== undefined ? { agent: 1 } : {}),
      ...(vm.config.lock !== undefined ? { lock: vm.config.lock } : {}),
      ...(vm.config.tags !== undefined ? { tags: vm.config.tags } : {}),
      ...(vm.config.template === '1' ? { template: 1 } : {}),
      ...(vm.config.serial0 !== undefined ? { serial: 1 } : {}),
    };
  },
};

const agentPrivs = ['VM.GuestAgent.Audit', 'VM.GuestAgent.Unrestricted'];

const agentPing: Route = {
  method: 'POST',
  path: '/nodes/{node}/qemu/{vmid}/agent/ping',
  permission: vmPerm(agentPrivs, true),
  handle: ({ params }, sim) => {
    assertAgentAvailable(sim, params.req('node'), Number(params.req('vmid')));
    return { result: {} };
  },
};

const agentInterfaces: Route = {
  method: 'GET',
  path: '/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces',
  permission: vmPerm(agentPrivs, true),
  handle: ({ params }, sim) => {
    const { vm, run } = assertAgentAvailable(sim, params.req('node'), Number(params.req('vmid')));
    return { result: networkInterfaces(sim, vm, run) };
  },
};

export const powerRoutes: Route[] = [start, stopLike('stop'), stopLike('shutdown'), statusCurrent, agentPing, agentInterfaces];
