import type { ApiRequest, Route, SimContext } from '../context';
import { assertRootOnly } from '../context';
import type { VmState } from '../cluster';
import { configMissingText, configNotFoundOnNodeText, pveDie } from '../errors';
import { assertAgentAvailable, networkInterfaces, readCloudInitSnippetBytes, readCloudInitSnippets, scheduleGuestBoot } from '../guestAgent';
import { realAgentCall } from './qemuAgent';
import type { Identity } from '../permissions';
import type { TaskContext } from '../tasks';
import { sleep } from '../timing';
import { applyPending } from './qemuConfig';
import { drivesOf, haManaged, loadVm, withFlock } from './qemuCommon';
import { vmCpus, vmMaxdisk, vmMaxmem } from './views';

/**
 * Power, status and guest agent (reference §4.11–4.13). Every action is a task; where PVE checks early (reboot,
 * reset, suspend, resume on a stopped VM: `VM 100 not running`; shutdown of a paused VM) the simulator answers an
 * HTTP error, everything else — `VM 100 already running`, `VM is locked (clone)`, lock timeouts, missing
 * snippets, shutdown timeouts — is a failed task. The power state changes when the task ends; a PVE-initiated
 * stop, start or reboot applies the `[pending]` config. HA-managed VMs get `hastart`/`hastop` tasks that only
 * ask the HA stack, end OK at once, and the VM follows `haActionMs` later.
 */
const vmPerm =
  (privs: string[], any = false) =>
  ({ identity, params }: ApiRequest, sim: SimContext) =>
    sim.perms.check(identity, `/vms/${params.str('vmid')}`, privs, any);

function lockError(req: ApiRequest, lock: string | undefined, allowed: string[] = []): Error | undefined {
  if (lock === undefined || req.params.bool('skiplock') || allowed.includes(lock)) return undefined;
  return new Error(`VM is locked (${lock})`);
}

/** Starts a stopped VM: the `qmstart` worker's body, also used by create's `start=1` and the HA stack. */
async function startVm(sim: SimContext, ctx: TaskContext, node: string, vmid: number, skiplock: boolean): Promise<void> {
  if (!sim.cluster.vmOnNode(node, vmid)) throw new Error(configMissingText(node, vmid));
  await withFlock(sim, node, vmid, async () => {
    const vm = sim.cluster.vmOnNode(node, vmid);
    if (!vm) throw new Error(configMissingText(node, vmid));
    const lock = vm.config.lock;
    if (lock !== undefined && lock !== 'suspended' && !skiplock) throw new Error(`VM is locked (${lock})`);
    if (vm.config.template === '1') throw new Error("you can't start a vm if it's a template");
    if (vm.run) throw new Error(`VM ${vmid} already running`);
    applyPending(vm);
    const { userData } = readCloudInitSnippets(sim, vm);
    if (vm.config.cicustom || vm.config.ide2?.includes('cloudinit')) ctx.log('generating cloud-init ISO');
    if (lock === 'suspended') ctx.log('resuming suspended VM');
    // qemu-server's start of a UEFI VM without an EFI disk: a warning, and the task ends `WARNINGS: 1` — a success.
    if (vm.config.bios === 'ovmf' && vm.config.efidisk0 === undefined) ctx.warn('no efidisk configured! Using temporary efivars disk.');
    if (sim.realGuests) await startRealGuest(sim, ctx, vm);
    else await sleep(sim.timing.startMs);
    ctx.failIfInjected();
    if (lock === 'suspended') delete vm.config.lock;
    bootGuest(sim, vm, userData);
  });
}

/** Real-guest mode: the cloud-init drive from the VM's config and snippets, then QEMU on the VM's own disk. */
async function startRealGuest(sim: SimContext, ctx: TaskContext, vm: VmState): Promise<void> {
  const disk = drivesOf(vm).find((d) => !d.cdrom);
  // A linked clone's volume names its template's base volume: `base-<template>-disk-<n>/vm-<vmid>-disk-<n>`.
  const template = /^base-(\d+)-disk-\d+\//.exec(disk?.volname ?? '')?.[1];
  const info = await sim.realGuests!.start(vm, readCloudInitSnippetBytes(sim, vm), disk?.sizeBytes ?? 0, template !== undefined ? Number(template) : undefined);
  ctx.log(`QEMU ${info.pid} (${info.accel}): SSH on ${info.ssh.host}:${info.ssh.port}, serial console in ${info.serialLog}`);
}

function bootGuest(sim: SimContext, vm: VmState, userData: string | undefined): void {
  const run = sim.cluster.markRunning(vm, Date.now());
  const real = sim.realGuests?.info(vm.vmid);
  if (real) run.pid = real.pid;
  run.agentBroken = sim.faults.take('agentNeverStarts', { node: vm.node, vmid: vm.vmid }) !== undefined;
  scheduleGuestBoot(sim, vm, run, userData);
}

/** Starts `vmid` in its own `qmstart` task (create's `start=1`: its UPID is never returned to the client). */
export function startInBackground(sim: SimContext, node: string, vmid: number, identity: Identity): string {
  return sim.tasks.start({
    node,
    type: 'qmstart',
    id: String(vmid),
    identity,
    worker: (ctx) => startVm(sim, ctx, node, vmid, false),
  }).upid;
}

/** Stops a running VM (stop or ACPI shutdown) under the flock; a stopped VM is a no-op that ends OK. */
async function stopVm(sim: SimContext, req: ApiRequest, ctx: TaskContext, action: 'stop' | 'shutdown', node: string, vmid: number): Promise<void> {
  if (!sim.cluster.vmOnNode(node, vmid)) throw new Error(configNotFoundOnNodeText(node, vmid));
  await withFlock(sim, node, vmid, async () => {
    const vm = sim.cluster.vmOnNode(node, vmid);
    if (!vm) throw new Error(configNotFoundOnNodeText(node, vmid));
    const locked = lockError(req, vm.config.lock);
    if (locked) throw locked;
    if (!vm.run) return;
    if (action === 'shutdown') await guestShutdown(sim, req, vmid);
    else if (sim.realGuests) await sim.realGuests.kill(vmid);
    else await sleep(sim.timing.stopMs);
    ctx.failIfInjected();
    if (vm.run) sim.cluster.markStopped(vm, Date.now());
    applyPending(vm);
  });
}

/** ACPI/agent shutdown: the guest takes `shutdownMs`; past `timeout` it fails unless `forceStop`. */
async function guestShutdown(sim: SimContext, req: ApiRequest, vmid: number): Promise<void> {
  const timeoutMs = (req.params.int('timeout') ?? 60) * 1000;
  if (sim.realGuests?.running(vmid)) {
    // The ACPI power button; a guest that ignores it is stopped only when asked to (`forceStop`).
    if (await sim.realGuests.powerdown(vmid, timeoutMs)) return;
    if (!req.params.bool('forceStop')) throw new Error('VM quit/powerdown failed - got timeout');
    return sim.realGuests.kill(vmid);
  }
  if (sim.timing.shutdownMs <= timeoutMs) return sleep(sim.timing.shutdownMs);
  await sleep(timeoutMs);
  if (!req.params.bool('forceStop')) throw new Error('VM quit/powerdown failed - got timeout');
}

/** The HA stack's answer to a power request: record the wish, end OK, act later (reference §4.17). */
function haRequest(sim: SimContext, req: ApiRequest, node: string, vmid: number, want: 'started' | 'stopped'): string {
  return sim.tasks.start({
    node,
    type: want === 'started' ? 'hastart' : 'hastop',
    id: String(vmid),
    identity: req.identity,
    worker: async (ctx) => {
      const resource = sim.cluster.ha.get(vmid);
      if (!resource) throw new Error(`service 'vm:${vmid}' not defined`);
      resource.state = want;
      ctx.log(`Requesting HA ${want === 'started' ? 'start' : 'stop'} for VM ${vmid}`);
      scheduleHaAction(sim, vmid);
    },
  }).upid;
}

/** The CRM/LRM loop, reduced to one step: bring the VM to its resource's requested state. */
export function scheduleHaAction(sim: SimContext, vmid: number): void {
  const timer = setTimeout(() => {
    const resource = sim.cluster.ha.get(vmid);
    const vm = sim.cluster.vms.get(vmid);
    if (!resource || !vm) return;
    const root: Identity = { userid: 'root@pam', privsep: false };
    if (resource.state === 'started' && !vm.run) {
      sim.tasks.start({ node: vm.node, type: 'qmstart', id: String(vmid), identity: root, worker: (ctx) => startVm(sim, ctx, vm.node, vmid, false) });
    } else if (resource.state === 'stopped' && vm.run) {
      sim.tasks.start({
        node: vm.node,
        type: 'qmshutdown',
        id: String(vmid),
        identity: root,
        worker: async () => {
          await sleep(sim.timing.shutdownMs);
          if (vm.run) sim.cluster.markStopped(vm, Date.now());
          applyPending(vm);
        },
      });
    }
  }, sim.timing.haActionMs);
  timer.unref();
}

const start: Route = {
  method: 'POST',
  path: '/nodes/{node}/qemu/{vmid}/status/start',
  permission: vmPerm(['VM.PowerMgmt']),
  handle: (req, sim) => {
    assertRootOnly(req, 'skiplock', 'migratedfrom', 'migration_type', 'migration_network', 'stateuri', 'targetstorage', 'force-cpu', 'nets-host-mtu', 'with-conntrack-state');
    const node = req.params.req('node');
    const vmid = Number(req.params.req('vmid'));
    if (haManaged(sim, vmid) && sim.cluster.vmOnNode(node, vmid)) return haRequest(sim, req, node, vmid, 'started');
    return sim.tasks.start({
      node,
      type: 'qmstart',
      id: String(vmid),
      identity: req.identity,
      worker: (ctx) => startVm(sim, ctx, node, vmid, req.params.bool('skiplock') ?? false),
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
      const vm = sim.cluster.vmOnNode(node, vmid);
      if (action === 'shutdown' && vm?.run?.paused && !req.params.bool('forceStop')) throw pveDie('VM is paused - cannot shutdown');
      if (vm && haManaged(sim, vmid)) return haRequest(sim, req, node, vmid, 'stopped');
      return sim.tasks.start({
        node,
        type: action === 'stop' ? 'qmstop' : 'qmshutdown',
        id: String(vmid),
        identity: req.identity,
        worker: (ctx) => stopVm(sim, req, ctx, action, node, vmid),
      }).upid;
    },
  };
}

/** The early checks of reboot/reset/suspend/resume: the VM must exist on `{node}` and (mostly) run. */
function runningVm(sim: SimContext, node: string, vmid: number, opts: { allowSuspended?: boolean } = {}): VmState {
  const vm = sim.cluster.vmOnNode(node, vmid);
  if (!vm) throw pveDie(configNotFoundOnNodeText(node, vmid));
  if (!vm.run && !(opts.allowSuspended && vm.config.lock === 'suspended')) throw pveDie(`VM ${vmid} not running`);
  return vm;
}

/** Runs `body` on the VM under its flock after the lock check, failing the task when the VM is gone. */
async function underLock(sim: SimContext, req: ApiRequest, node: string, vmid: number, allowed: string[], body: (vm: VmState) => Promise<void>): Promise<void> {
  await withFlock(sim, node, vmid, async () => {
    const vm = sim.cluster.vmOnNode(node, vmid);
    if (!vm) throw new Error(configNotFoundOnNodeText(node, vmid));
    const locked = lockError(req, vm.config.lock, allowed);
    if (locked) throw locked;
    await body(vm);
  });
}

const reboot: Route = {
  method: 'POST',
  path: '/nodes/{node}/qemu/{vmid}/status/reboot',
  permission: vmPerm(['VM.PowerMgmt']),
  handle: (req, sim) => {
    const node = req.params.req('node');
    const vmid = Number(req.params.req('vmid'));
    const vm = runningVm(sim, node, vmid);
    if (vm.run?.paused) throw pveDie('VM is paused - cannot shutdown');
    return sim.tasks.start({
      node,
      type: 'qmreboot',
      id: String(vmid),
      identity: req.identity,
      worker: (ctx) =>
        underLock(sim, req, node, vmid, [], async (current) => {
          if (!current.run) throw new Error(`VM ${vmid} not running`);
          await guestShutdown(sim, req, vmid);
          ctx.failIfInjected();
          if (current.run) sim.cluster.markStopped(current, Date.now());
          applyPending(current);
          // qmeventd starts the VM again once the guest is down (a new QEMU, the cloud-init drive written anew).
          const { userData } = readCloudInitSnippets(sim, current);
          if (sim.realGuests) await startRealGuest(sim, ctx, current);
          bootGuest(sim, current, userData);
        }),
    }).upid;
  },
};

const reset: Route = {
  method: 'POST',
  path: '/nodes/{node}/qemu/{vmid}/status/reset',
  permission: vmPerm(['VM.PowerMgmt']),
  handle: (req, sim) => {
    assertRootOnly(req, 'skiplock');
    const node = req.params.req('node');
    const vmid = Number(req.params.req('vmid'));
    runningVm(sim, node, vmid);
    return sim.tasks.start({
      node,
      type: 'qmreset',
      id: String(vmid),
      identity: req.identity,
      worker: (ctx) =>
        underLock(sim, req, node, vmid, [], async (current) => {
          if (!current.run) throw new Error(`VM ${vmid} not running`);
          ctx.failIfInjected();
          // A hard reset: the guest boots again (agent down until it is up); pending config stays pending.
          if (sim.realGuests?.running(vmid)) await sim.realGuests.reset(vmid);
          sim.cluster.markStopped(current, Date.now());
          bootGuest(sim, current, undefined);
        }),
    }).upid;
  },
};

const suspend: Route = {
  method: 'POST',
  path: '/nodes/{node}/qemu/{vmid}/status/suspend',
  permission: vmPerm(['VM.PowerMgmt']),
  handle: (req, sim) => {
    assertRootOnly(req, 'skiplock');
    const node = req.params.req('node');
    const vmid = Number(req.params.req('vmid'));
    runningVm(sim, node, vmid);
    const todisk = req.params.bool('todisk') ?? false;
    if (todisk && haManaged(sim, vmid)) throw pveDie('Cannot suspend HA managed VM to disk');
    return sim.tasks.start({
      node,
      type: todisk ? 'qmsuspend' : 'qmpause',
      id: String(vmid),
      identity: req.identity,
      worker: (ctx) =>
        underLock(sim, req, node, vmid, [], async (current) => {
          if (!current.run) throw new Error(`VM ${vmid} not running`);
          ctx.failIfInjected();
          if (!todisk) {
            if (sim.realGuests?.running(vmid)) await sim.realGuests.pause(vmid, true);
            return sim.cluster.markPaused(current, true, Date.now());
          }
          // Real guests: the RAM is not saved (a model deviation), the process ends and the next start boots.
          if (sim.realGuests?.running(vmid)) await sim.realGuests.kill(vmid);
          else await sleep(sim.timing.stopMs);
          current.config.lock = 'suspended';
          sim.cluster.markStopped(current, Date.now());
        }),
    }).upid;
  },
};

const resume: Route = {
  method: 'POST',
  path: '/nodes/{node}/qemu/{vmid}/status/resume',
  permission: vmPerm(['VM.PowerMgmt']),
  handle: (req, sim) => {
    assertRootOnly(req, 'skiplock', 'nocheck');
    const node = req.params.req('node');
    const vmid = Number(req.params.req('vmid'));
    const vm = runningVm(sim, node, vmid, { allowSuspended: true });
    if (!vm.run) {
      // Suspended to disk: resuming is a start that loads the saved state.
      return sim.tasks.start({ node, type: 'qmstart', id: String(vmid), identity: req.identity, worker: (ctx) => startVm(sim, ctx, node, vmid, false) }).upid;
    }
    return sim.tasks.start({
      node,
      type: 'qmresume',
      id: String(vmid),
      identity: req.identity,
      worker: (ctx) =>
        underLock(sim, req, node, vmid, [], async (current) => {
          ctx.failIfInjected();
          if (sim.realGuests?.running(vmid)) await sim.realGuests.pause(vmid, false);
          sim.cluster.markPaused(current, false, Date.now());
        }),
    }).upid;
  },
};

const statusCurrent: Route = {
  method: 'GET',
  path: '/nodes/{node}/qemu/{vmid}/status/current',
  permission: vmPerm(['VM.Audit']),
  handle: ({ params }, sim) => {
    const vm = loadVm(sim, params.req('node'), Number(params.req('vmid')));
    const run = vm.run;
    const status = run ? 'running' : 'stopped';
    const ha = sim.cluster.ha.get(vm.vmid);
    const maxmem = vmMaxmem(vm);
    return {
      vmid: vm.vmid,
      name: vm.config.name ?? `VM ${vm.vmid}`,
      status,
      qmpstatus: run?.paused ? 'paused' : status,
      cpus: vmCpus(vm),
      cpu: run ? 0.02 : 0,
      maxmem,
      mem: run ? Math.floor(maxmem * 0.3) : 0,
      memhost: run ? Math.floor(maxmem * 0.32) : 0,
      maxdisk: vmMaxdisk(vm),
      disk: 0,
      uptime: run ? Math.floor((Date.now() - run.startedAt) / 1000) : 0,
      netin: 0,
      netout: 0,
      diskread: 0,
      diskwrite: 0,
      ha: ha ? { managed: 1, state: ha.state } : { managed: 0 },
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
  handle: async ({ params }, sim) => {
    const { vm } = assertAgentAvailable(sim, params.req('node'), Number(params.req('vmid')));
    if (sim.realGuests?.running(vm.vmid)) return { result: await realAgentCall(sim, vm, 'ping') };
    return { result: {} };
  },
};

const agentInterfaces: Route = {
  method: 'GET',
  path: '/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces',
  permission: vmPerm(agentPrivs, true),
  handle: async ({ params }, sim) => {
    const { vm, run } = assertAgentAvailable(sim, params.req('node'), Number(params.req('vmid')));
    if (sim.realGuests?.running(vm.vmid)) return { result: await realAgentCall(sim, vm, 'network-get-interfaces') };
    return { result: networkInterfaces(sim, vm, run) };
  },
};

export const powerRoutes: Route[] = [start, stopLike('stop'), stopLike('shutdown'), reboot, reset, suspend, resume, statusCurrent, agentPing, agentInterfaces];
