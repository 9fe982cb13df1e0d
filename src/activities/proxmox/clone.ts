import { ApplicationFailure, Context } from '@temporalio/activity';
import { setTimeout as sleep } from 'node:timers/promises';
import { classifyText, PveApiError, type ClusterResource, type PveClient, type TaskListEntry, type TaskOutcome } from '../../clients/pve';
import { deviceNames } from '../../domain/deviceNames';
import { ErrorType } from '../../errors';
import { grantAdvice, privilegeNeeds, privilegeText } from '../../domain/pveflowPrivileges';
import type { ActivityDeps } from '../deps';
import { pveFailure } from './failures';
import { earlierTask, taskFailure, taskOutcome } from './runTask';

export interface Cloned {
  vmid: number;
  node: string;
  /** The template it was cloned from (the request's, else PVE_TEMPLATE_VMID): SMBIOS records it. */
  templateVmid: number;
}

export interface CloneTemplateInput {
  serial: string;
  name: string;
  vmid: number;
  /** Where the VM must end up. */
  node: string;
  templateVmid?: number;
  fullClone?: boolean;
}

/**
 * Clones the template into `vmid` on `node`, inside the pool, with the request's ownership marker in the
 * description. Idempotent: a retry waits on the earlier attempt's task, or adopts the VM it made (marker checked),
 * even when that attempt never learnt its task's UPID (found in the node's task list); a VMID held by anything else is
 * never touched and reported as taken, so the build picks another.
 */
export function cloneActivities({ pve, settings }: ActivityDeps) {
  return {
    async cloneTemplate(input: CloneTemplateInput): Promise<Cloned> {
      const { serial, vmid, node } = input;
      const names = deviceNames(serial, input.name);
      const templateVmid = input.templateVmid ?? settings.templateVmid;
      const s = { serial, vmid, node };

      // A retry after a worker crash waits for the clone already running (through a cancel, as below); one that failed is
      // why we retry: start anew.
      if ((await earlierTask(pve, { ...settings, outlastCancel: true }))?.ok) return { vmid, node, templateVmid };

      let resources: ClusterResource[];
      try {
        resources = await pve.clusterResources();
      } catch (err) {
        throw pveFailure(err, s, 'looking up the template and VMID');
      }
      const vms = resources.filter((r) => r.type === 'qemu' || r.type === 'lxc');
      const existing = vms.find((r) => r.vmid === vmid);
      if (existing) return adopt(existing);

      const template = vms.find((r) => r.vmid === templateVmid);
      if (!template || !template.template || !template.node) {
        throw ApplicationFailure.create({
          type: ErrorType.PveTemplateMissing,
          nonRetryable: true,
          message:
            `template VM ${templateVmid} for request ${serial} is ${template ? 'not a template' : 'not visible to the API token'} ` +
            `(pool '${settings.pool}'). Convert it to a template and add it to the pool, or set PVE_TEMPLATE_VMID, then rebuild.` +
            (template ? '' : ` The token sees only what it holds VM.Audit on: ${grantAdvice(['VM.Audit', 'VM.Clone'], `/pool/${settings.pool}`)}`),
        });
      }
      const full = input.fullClone ?? settings.fullCloneDefault;
      // The build holds the clone slot for this clone's node and storages (it asked the clone-slots coordinator).
      return clone(template.node, full);

      async function clone(templateNode: string, full: boolean): Promise<Cloned> {
        let upid: string;
        try {
          upid = await pve.cloneVm(templateNode, templateVmid, {
            newid: vmid,
            name: names.hostname,
            pool: settings.pool,
            full,
            storage: full ? settings.targetStorage : undefined,
            target: templateNode === node ? undefined : node,
            description: `${names.marker}\nManaged by pveflow for request ${serial}. Do not edit by hand.`,
          });
        } catch (err) {
          if (err instanceof PveApiError && err.errorClass === 'alreadyExists') return predecessorsClone(templateNode, full, err.pveMessage);
          if (err instanceof PveApiError && STORAGE_REFUSAL.test(err.pveMessage)) throw storageRefusal(s, templateVmid, templateNode, err.pveMessage);
          throw pveFailure(err, { ...s, node: templateNode }, `cloning template ${templateVmid}`, cloneNeeds(templateVmid, settings.pool, settings.bridge));
        }
        // The clone holds a slot other clones wait for: its end is seen within a tenth of its duration, not half,
        // and a short clone's within CLONE_POLL_MIN_MS. A cancelled build waits for the clone to end: Proxmox adds the
        // VM to the pool only then, and until it does the undo's pool-scoped token cannot see (or destroy) it.
        const outcome = await taskOutcome(pve, upid, {
          ...settings,
          pollMinMs: Math.min(settings.pollMinMs, CLONE_POLL_MIN_MS),
          lagRatio: CLONE_POLL_LAG,
          outlastCancel: true,
        });
        if (!outcome.ok) {
          const failure = await cloneTaskFailure(pve, outcome, s);
          if (failure.type === ErrorType.PveVmidTaken) return predecessorsClone(templateNode, full, outcome.exitstatus);
          throw failure;
        }
        return { vmid, node, templateVmid };
      }

      /**
       * Proxmox says the VMID exists. On a first attempt nobody of this activity asked for it: another client's. On a
       * retry it may be the clone an earlier attempt started before it could heartbeat the UPID (a lost answer, a worker
       * that died): Proxmox adds that VM to the pool only when its clone ends, so the token cannot see it yet. The retry
       * waits for every clone of the template this token started since the activity was first scheduled, then looks
       * again: our VM is adopted; it is reported taken only when it is provably someone else's, because a taken VMID
       * loses its destroy undo.
       */
      async function predecessorsClone(templateNode: string, full: boolean, said: string): Promise<Cloned> {
        const info = Context.current().info;
        if (info.attempt <= 1) throw vmidTaken(s, said);
        const since = Math.floor(info.scheduledTimestampMs / 1000) - CLOCK_SKEW_S;
        const ownClones = () =>
          pve.ownCloneTasks(templateNode, { sourceVmid: templateVmid, since, source: 'all' }).catch((err) => {
            throw pveFailure(err, { ...s, node: templateNode }, `listing the clone tasks of template ${templateVmid}`);
          });
        const earlier = await ownClones();
        for (const t of earlier.filter(running)) {
          // Heartbeated under its own key: a retry must not take another request's clone for this activity's task.
          await taskOutcome(pve, t.upid, { ...settings, outlastCancel: true }, 'preparatoryUpid');
        }
        // Read where our clone puts it rather than in /cluster/resources, which lags the pool by a status cycle.
        const inPool = await pve.vmConfig(node, vmid).then(
          () => true,
          (err) => (err instanceof PveApiError && (err.errorClass === 'permission' || err.errorClass === 'notFound') ? false : Promise.reject(pveFailure(err, s, 'looking for the VM an earlier attempt cloned'))),
        );
        if (inPool) return adopt({ id: `qemu/${vmid}`, type: 'qemu', vmid, node }); // the marker decides: ours is adopted, anyone else's is taken
        const exists = await pve.nextId(vmid).then(
          () => false,
          (err) => (err instanceof PveApiError && err.errorClass === 'alreadyExists' ? true : Promise.reject(pveFailure(err, s, 'checking the VMID'))),
        );
        // The earlier clone failed and Proxmox removed its placeholder: the VMID is free again, for us.
        if (!exists) return clone(templateNode, full);
        // Outside the pool and still there: an ended clone of ours would be in the pool or gone, except one whose
        // Proxmox worker was killed, which leaves its `lock: clone` placeholder behind.
        const killed = (await ownClones()).filter((t) => !running(t) && t.status === 'unexpected status');
        if (killed.length === 0) throw vmidTaken(s, said);
        throw ApplicationFailure.create({
          type: ErrorType.PveTaskFailed,
          nonRetryable: true,
          message:
            `VM ${vmid} for request ${serial} exists outside pool '${settings.pool}', and a clone of template ${templateVmid} by this ` +
            `token on ${templateNode} was killed (${killed.map((t) => t.upid).join(', ')}): it may be this request's half-made ` +
            `clone. As root on ${templateNode}: 'qm config ${vmid}'; if it is, 'qm unlock ${vmid}' and 'qm destroy ${vmid} --purge', then rebuild.`,
        });
      }

      async function adopt(vm: ClusterResource): Promise<Cloned> {
        const at = vm.node ?? node;
        for (;;) {
          const cfg = await pve.vmConfig(at, vmid).catch((err) => {
            throw pveFailure(err, { ...s, node: at }, 'checking an existing VM');
          });
          if (!cfg.description?.startsWith(names.marker)) throw vmidTaken(s, `VM ${vmid} exists and is not pveflow's for ${serial}`);
          if (cfg.lock !== 'clone') return { vmid, node: at, templateVmid };
          // Our earlier attempt's clone is still copying: wait for it to let go of the lock.
          Context.current().heartbeat();
          await sleep(settings.pollMaxMs, undefined, { signal: Context.current().cancellationSignal });
        }
      }
    },
  };
}

/** How far a node's clock may lag the worker's when tasks are listed by start time (NTP keeps it to well under this). */
const CLOCK_SKEW_S = 300;

/** A task-list entry of a task still running: the list gives a status only to tasks that ended. */
function running(t: TaskListEntry): boolean {
  return t.status === undefined || t.status === 'running';
}

/** How late the end of a clone may be seen, as a share of its duration (see waitForTask's `lagRatio`). */
const CLONE_POLL_LAG = 0.1;
/**
 * The shortest pause between two looks at a clone's task. The first look, right after Proxmox accepted the clone,
 * nearly always finds it running; a linked clone that then ends within milliseconds held its slot for this pause
 * (100 ms until 2026-12-07: most of a clone's slot time in the benches). A task status read is a file read on the
 * node: a 1.5 s clone is now looked at 33 times instead of 16.
 */
const CLONE_POLL_MIN_MS = 20;

/** Proxmox refusing to clone across nodes or onto a storage (§4.8): the same call will be refused again. */
const STORAGE_REFUSAL = /VM uses local storage|can't clone to non-shared storage|is not available on node|does not support vm images|storage '.*' does not exist/;

function storageRefusal(s: { serial: string; vmid: number; node: string }, templateVmid: number, templateNode: string, said: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: ErrorType.PveInvalidParameter,
    nonRetryable: true,
    message:
      `cloning template ${templateVmid} (on node ${templateNode}) to node ${s.node} as VM ${s.vmid} for request ${s.serial}: ` +
      `Proxmox said "${said}". Move the template's disks to shared storage, set PVE_TARGET_STORAGE to a shared storage ` +
      `enabled on ${s.node}, or limit PVE_NODE_SELECTOR to ${templateNode}, then rebuild.`,
  });
}

function vmidTaken(s: { serial: string; vmid: number; node: string }, said: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: ErrorType.PveVmidTaken,
    nonRetryable: true,
    message: `VMID ${s.vmid} is taken (${said}) for request ${s.serial}; another VMID will be reserved.`,
  });
}

/**
 * "config file already exists" in the clone task means another client raced for the VMID. A target-lock timeout
 * may mean the same, or only a busy node: re-check the VMID (proxmox-behaviour.md §6.1) — taken, pick another;
 * free, retry the same.
 */
async function cloneTaskFailure(pve: PveClient, outcome: TaskOutcome, s: { serial: string; vmid: number; node: string }) {
  const cls = classifyText(outcome.exitstatus);
  if (cls === 'alreadyExists') return vmidTaken(s, outcome.exitstatus);
  if (cls === 'lockTimeout' && outcome.exitstatus.includes(`lock-${s.vmid}.conf`)) {
    const free = await pve.nextId(s.vmid).then(
      () => true,
      (err) => !(err instanceof PveApiError && err.errorClass === 'alreadyExists'),
    );
    if (!free) return vmidTaken(s, outcome.exitstatus);
  }
  return taskFailure(outcome, s, 'cloning the template');
}

/** What a clone needs where (src/domain/pveflowPrivileges.ts), for a refusal that does not say. */
function cloneNeeds(templateVmid: number, pool: string, bridge: string): string {
  const where: Record<string, string> = { template: `/vms/${templateVmid}`, pool: `/pool/${pool}`, 'template-storages': "the template's storages", bridge: `/sdn/zones/localnetwork/${bridge}` };
  return privilegeNeeds(undefined)
    .filter((n) => n.call.includes('/clone'))
    .map((n) => `${privilegeText(n.privilege)} on ${where[n.scope] ?? n.scope}`)
    .join(', ');
}
