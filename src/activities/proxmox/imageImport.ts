import { ApplicationFailure, Context } from '@temporalio/activity';
import { WorkflowUpdateFailedError } from '@temporalio/client';
import { PveApiError, waitForTask, type TaskOutcome } from '../../clients/pve';
import { addImageUpdate, catalogueQuery } from '../../contracts/imageCatalogueMessages';
import { hasTag, IMAGE_IMPORT_TAG, imageMarker, imageVmName, importProgressSignal, type ChecksumAlgorithm, type ImageImportInput } from '../../contracts/imageImport';
import { imageCatalogueWorkflowId } from '../../contracts/workflowIds';
import { addImage, type CatalogueEntry } from '../../domain/catalogueRules';
import { ErrorType } from '../../errors';
import type { ActivityDeps } from '../deps';
import { pveFailure } from './failures';
import { earlierTask, taskFailure, taskOutcome, type TaskPolling } from './runTask';

/** How often, at most, a download's progress is told to its workflow (each is one signal in its history). */
const PROGRESS_EVERY_MS = 5_000;

export interface ImportPlan {
  /**
   * Where templates are made: the node the operator named; else one node when the disk storage is shared, or every
   * online node the selector allows when it is local to each (Proxmox clones a template on local storage only on its
   * own node, proxmox-behaviour.md §6.4, so placement needs one on each node it may choose).
   */
  nodes: string[];
  /** Where the file is downloaded once when the import storage is shared; absent: each node downloads its own. */
  sharedDownloadNode?: string;
}

/**
 * The activities of an image import: plan where, download (Proxmox verifies the checksum), make the VM from the file
 * with the settings a build expects, turn it into a template, add it to the catalogue; and the undos. Each is
 * idempotent: a retry waits for the task its earlier attempt heartbeated, or finds what it made by its marker.
 */
export function imageImportActivities({ pve, settings, temporal }: ActivityDeps) {
  const who = (name: string) => ({ serial: `image ${name}` });
  const poll: TaskPolling = settings;

  return {
    /** The nodes that get a template and where to download: both storages must exist on each, and each must be online. */
    async planImageImport(input: Pick<ImageImportInput, 'name' | 'node' | 'downloadStorage' | 'diskStorage' | 'source'>): Promise<ImportPlan> {
      const resources = await pve.clusterResources().catch((err) => {
        throw pveFailure(err, who(input.name), 'looking up the nodes and storages for an image import');
      });
      const online = resources.filter((r) => r.type === 'node' && r.status === 'online').map((r) => r.node!);
      const allowed = settings.nodeSelector?.length ? online.filter((n) => settings.nodeSelector!.includes(n)) : online;
      const storageOn = (storage: string, node: string) => resources.find((r) => r.type === 'storage' && r.storage === storage && r.node === node);
      const needsDownload = 'url' in input.source;
      const fits = (node: string) => !!storageOn(input.diskStorage, node) && (!needsDownload || !!storageOn(input.downloadStorage, node));
      const candidates = input.node ? [input.node] : allowed;
      const fitting = candidates.filter(fits);
      const node = fitting[0];
      if (!node) {
        throw ApplicationFailure.create({
          type: ErrorType.PveInvalidParameter,
          nonRetryable: true,
          message:
            `image ${input.name}: ${input.node ? `node ${input.node} is not online or lacks` : `no online node${settings.nodeSelector?.length ? ` of PVE_NODE_SELECTOR (${settings.nodeSelector.join(', ')})` : ''} has`} ` +
            `storage ${input.diskStorage}${needsDownload ? ` and storage ${input.downloadStorage}` : ''} visible to the API token. Name a node and storages that exist ` +
            `(pvesm status on the node), or grant Datastore.Audit on them, and import again.`,
        });
      }
      const diskShared = !!storageOn(input.diskStorage, node)?.shared;
      // A volume the operator named on a local storage is on one node only: its template is made there alone.
      const sourceShared = 'url' in input.source ? !!storageOn(input.downloadStorage, node)?.shared : !!storageOn(input.source.volume.split(':')[0]!, node)?.shared;
      const nodes = diskShared || (!needsDownload && !sourceShared) ? [node] : fitting;
      return { nodes, ...(needsDownload && sourceShared ? { sharedDownloadNode: node } : {}) };
    },

    /**
     * Downloads the image onto the node's storage and waits for Proxmox's `download` task, heartbeating the UPID and
     * telling the workflow the bytes as the task log reports them. Proxmox verifies the checksum at the end and fails
     * the task on a mismatch, removing the file. A retry whose earlier download succeeded returns its volume; one
     * whose earlier download died removes whatever file is left and starts again.
     */
    async downloadImage(input: { name: string; node: string; storage: string; url: string; checksum: string; checksumAlgorithm: ChecksumAlgorithm; filename: string }): Promise<{ volume: string; bytes?: number }> {
      const volume = `${input.storage}:import/${input.filename}`;
      const s = { ...who(input.name), node: input.node };
      const ctx = Context.current();
      const progress = progressReporter();
      const earlier = await earlierTask(pve, poll);
      if (earlier?.ok) return { volume, ...(await sizeOf(volume)) };
      // No earlier task, or one that failed: whatever file it left is not trusted.
      await removeVolume(input.node, volume, s);
      let upid: string;
      try {
        upid = await pve.downloadUrl(input.node, input.storage, {
          url: input.url,
          filename: input.filename,
          content: 'import',
          checksum: input.checksum,
          'checksum-algorithm': input.checksumAlgorithm,
        });
      } catch (err) {
        throw pveFailure(err, s, `starting the download of ${input.url} onto storage ${input.storage}`, `Datastore.AllocateTemplate on /storage/${input.storage} and Sys.AccessNetwork on /nodes/${input.node}`);
      }
      ctx.heartbeat({ upid });
      let outcome: TaskOutcome;
      try {
        outcome = await waitForTask(pve, upid, {
          signal: ctx.cancellationSignal,
          minPollMs: poll.pollMinMs,
          maxPollMs: poll.pollMaxMs,
          onPoll: () => {
            ctx.heartbeat({ upid });
            progress.tick(upid);
          },
        });
      } catch (err) {
        // Cancelled (or the worker stops): the download must not go on filling the storage behind the import's back.
        if (ctx.cancellationSignal.aborted) await pve.stopTask(upid).catch(() => undefined);
        throw err;
      }
      await progress.flush(upid);
      if (!outcome.ok) {
        const mismatch = /checksum mismatch/i.test(outcome.exitstatus);
        // Proxmox checks an import file with qemu-img before keeping it (`failed to verify file`).
        const notAnImage = /failed to verify file|not in \w+ format|Could not open/i.test(outcome.exitstatus);
        throw ApplicationFailure.create({
          type: ErrorType.PveTaskFailed,
          nonRetryable: true,
          message: mismatch
            ? `image ${input.name}: the file downloaded from ${input.url} does not match the expected ${input.checksumAlgorithm} checksum (Proxmox task ${upid}: ${outcome.exitstatus}); Proxmox removed it. Check the checksum (and that the URL serves the file you mean), then import again.`
            : notAnImage
              ? `image ${input.name}: what ${input.url} serves is not a ${input.filename.split('.').pop()} disk image (Proxmox task ${upid}: ${outcome.exitstatus}); Proxmox removed it. Give the URL of the image file itself (a qcow2, raw or vmdk), then import again.`
              : `image ${input.name}: downloading ${input.url} onto ${input.storage} on ${input.node} failed in Proxmox task ${upid}: ${outcome.exitstatus}. Check that the node can reach the URL and the storage has room, then import again.`,
          details: [{ upid, exitstatus: outcome.exitstatus, log: outcome.logTail }],
        });
      }
      return { volume, ...(await sizeOf(volume)) };

      async function sizeOf(volid: string): Promise<{ bytes?: number }> {
        const list = await pve.storageContent(input.node, input.storage, 'import').catch((err) => {
          throw pveFailure(err, s, `listing the import content of ${input.storage}`);
        });
        const found = list.find((v) => v.volid === volid);
        if (!found)
          throw ApplicationFailure.create({
            type: ErrorType.PveTaskFailed,
            nonRetryable: true,
            message: `image ${input.name}: the download task ended but ${volid} is not on ${input.storage} on ${input.node}; check the storage, then import again.`,
          });
        if (found.size === 0) {
          throw ApplicationFailure.create({
            type: ErrorType.InvalidRequest,
            nonRetryable: true,
            message: `image ${input.name}: ${input.url} is empty (0 bytes downloaded): it is not a disk image. Give the URL of the image file itself, then import again.`,
          });
        }
        return found.size === undefined ? {} : { bytes: found.size };
      }
    },

    /** A volume already on a storage, named by the operator: it must exist and hold something. */
    async checkImageVolume(input: { name: string; node: string; volume: string }): Promise<{ bytes?: number }> {
      const storage = input.volume.split(':')[0]!;
      const list = await pve.storageContent(input.node, storage).catch((err) => {
        throw pveFailure(err, { ...who(input.name), node: input.node }, `listing the content of storage ${storage}`);
      });
      const found = list.find((v) => v.volid === input.volume);
      if (!found || found.size === 0) {
        throw ApplicationFailure.create({
          type: ErrorType.InvalidRequest,
          nonRetryable: true,
          message: `image ${input.name}: volume ${input.volume} ${found ? 'is empty' : `is not on storage ${storage} on node ${input.node} (or the token cannot see it)`}. Name an existing disk image (pvesm list ${storage} --content import), then import again.`,
        });
      }
      return found.size === undefined ? {} : { bytes: found.size };
    },

    /**
     * Creates the template-to-be from the volume, as docs/operations.md's template section makes one by hand: agent on,
     * cloud-init drive, serial console, virtio NIC on the configured bridge, in pveflow's pool, with the image's
     * marker. A retry adopts the VM its earlier attempt made (marker checked); a VMID held by anything else is taken.
     */
    async createImageVm(input: { name: string; os: string; node: string; vmid: number; volume: string; diskStorage: string; cores: number; memoryMiB: number }): Promise<{ diskGiB?: number }> {
      const s = { ...who(input.name), vmid: input.vmid, node: input.node };
      const earlier = await earlierTask(pve, { ...poll, outlastCancel: true });
      if (!earlier?.ok) {
        const existing = await pve
          .vmConfig(input.node, input.vmid)
          .catch((err) => (err instanceof PveApiError && (err.errorClass === 'notFound' || err.errorClass === 'permission') ? undefined : Promise.reject(pveFailure(err, s, "looking for an earlier attempt's VM"))));
        if (existing && !existing.description?.startsWith(imageMarker(input.name))) throw vmidTaken(s, `VM ${input.vmid} exists and is not image ${input.name}'s`);
        if (!existing) {
          let upid: string;
          try {
            upid = await pve.createVm(input.node, {
              vmid: input.vmid,
              name: imageVmName(input.name),
              pool: settings.pool,
              tags: IMAGE_IMPORT_TAG,
              description: `${imageMarker(input.name)}\nImage ${input.name} (${input.os}), imported by pveflow. Do not edit by hand: update it through pveflow.`,
              cores: input.cores,
              memory: input.memoryMiB,
              ostype: /^win/i.test(input.os) ? 'win11' : 'l26',
              scsihw: 'virtio-scsi-pci',
              scsi0: `${input.diskStorage}:0,import-from=${input.volume}`,
              ide2: `${input.diskStorage}:cloudinit`,
              boot: 'order=scsi0',
              serial0: 'socket',
              vga: 'serial0',
              agent: 'enabled=1',
              net0: `virtio,bridge=${settings.bridge}${settings.vlan === undefined ? '' : `,tag=${settings.vlan}`}`,
            });
          } catch (err) {
            if (err instanceof PveApiError && err.errorClass === 'alreadyExists') throw vmidTaken(s, err.pveMessage);
            throw pveFailure(err, s, `creating the VM of image ${input.name} from ${input.volume}`, `VM.Allocate on /pool/${settings.pool}, Datastore.AllocateSpace on /storage/${input.diskStorage}`);
          }
          const outcome = await taskOutcome(pve, upid, { ...poll, outlastCancel: true });
          if (!outcome.ok) {
            if (/already exists/.test(outcome.exitstatus)) throw vmidTaken(s, outcome.exitstatus);
            const failure = taskFailure(outcome, s, `importing ${input.volume} as the disk of image ${input.name}`);
            // qemu-img cannot read it: not a disk image. No retry makes it one.
            throw /qemu-img|could not open|image format|not a (valid )?disk/i.test(outcome.exitstatus + outcome.logTail.join(' '))
              ? ApplicationFailure.create({
                  type: ErrorType.InvalidRequest,
                  nonRetryable: true,
                  message: `image ${input.name}: ${input.volume} is not a disk image Proxmox can import (task ${upid}: ${outcome.exitstatus}). Give a qcow2, raw or vmdk image, then import again.`,
                })
              : failure;
          }
        }
      }
      const cfg = await pve.vmConfig(input.node, input.vmid).catch((err) => {
        throw pveFailure(err, s, 'reading the new VM');
      });
      const size = /size=(\d+(?:\.\d+)?)([KMGT])/.exec(String(cfg.raw.scsi0 ?? ''));
      const unit: Record<string, number> = { K: 1 / (1024 * 1024), M: 1 / 1024, G: 1, T: 1024 };
      return size ? { diskGiB: Math.ceil(Number(size[1]) * unit[size[2]!]!) } : {};
    },

    /** Makes the VM a template, then takes the import's tag off it (see IMAGE_IMPORT_TAG). */
    async convertImageToTemplate(input: { name: string; node: string; vmid: number }): Promise<void> {
      const s = { ...who(input.name), vmid: input.vmid, node: input.node };
      const readConfig = () =>
        pve.vmConfig(input.node, input.vmid).catch((err) => {
          throw pveFailure(err, s, 'reading the VM before making it a template');
        });
      const earlierOk = (await earlierTask(pve, poll))?.ok;
      let cfg = await readConfig();
      if (!cfg.template && !earlierOk) {
        let upid: string;
        try {
          upid = await pve.convertToTemplate(input.node, input.vmid);
        } catch (err) {
          throw pveFailure(err, s, `making VM ${input.vmid} a template`, `VM.Allocate on /vms/${input.vmid}`);
        }
        const outcome = await taskOutcome(pve, upid, poll);
        if (!outcome.ok) throw taskFailure(outcome, s, 'making the image VM a template');
        cfg = await readConfig();
      }
      if (!hasTag(cfg.tags, IMAGE_IMPORT_TAG)) return;
      const rest = (cfg.tags ?? '').split(/[;, ]+/).filter((t) => t && t !== IMAGE_IMPORT_TAG);
      let upid: string;
      try {
        upid = await pve.updateVmConfig(input.node, input.vmid, rest.length ? { tags: rest.join(';') } : { delete: 'tags' });
      } catch (err) {
        throw pveFailure(err, s, `taking tag ${IMAGE_IMPORT_TAG} off template ${input.vmid}`, `VM.Config.Options on /vms/${input.vmid}`);
      }
      const outcome = await taskOutcome(pve, upid, poll, 'preparatoryUpid');
      if (!outcome.ok) throw taskFailure(outcome, s, `taking tag ${IMAGE_IMPORT_TAG} off the template`);
    },

    /** Adds the image to the catalogue (its Update refuses a name taken meanwhile: the import then fails and cleans up). */
    async catalogueImage(entry: CatalogueEntry): Promise<void> {
      const handle = temporal.client.workflow.getHandle(imageCatalogueWorkflowId(temporal.taskQueue));
      const refused = (why: string) => ApplicationFailure.create({ type: ErrorType.InvalidRequest, nonRetryable: true, message: `image ${entry.name} could not be added to the catalogue: ${why}` });
      try {
        await handle.executeUpdate(addImageUpdate, { args: [entry] });
      } catch (err) {
        if (err instanceof WorkflowUpdateFailedError) throw refused((err.cause as Error | undefined)?.message ?? err.message);
        // No answer (a rejected Update the server forgot before the call came back says "not found"; a lost reply):
        // the catalogue itself tells whether this import's entry is in it, or why it would be refused.
        const state = await handle.query(catalogueQuery).catch(() => undefined);
        if (state?.entries.some((e) => e.name === entry.name && e.importedBy === entry.importedBy)) return;
        const rule = state ? addImage(state, entry) : undefined;
        if (rule && !rule.ok) throw refused(rule.refusal.reason);
        throw err;
      }
    },

    /** Undo: the downloaded file. Absent is success. */
    async removeImportVolume(input: { name: string; node: string; volume: string }): Promise<void> {
      await removeVolume(input.node, input.volume, { ...who(input.name), node: input.node });
    },

    /** Undo: the half-made VM or template, only when it carries this image's marker. Absent is success. */
    async destroyImageVm(input: { name: string; node: string; vmid: number }): Promise<'destroyed' | 'absent'> {
      const s = { ...who(input.name), vmid: input.vmid, node: input.node };
      if ((await earlierTask(pve, poll))?.ok) return 'destroyed';
      const cfg = await pve
        .vmConfig(input.node, input.vmid)
        .catch((err) => (err instanceof PveApiError && (err.errorClass === 'notFound' || err.errorClass === 'permission') ? undefined : Promise.reject(pveFailure(err, s, 'looking up the image VM'))));
      if (!cfg) return 'absent';
      if (!cfg.description?.startsWith(imageMarker(input.name))) {
        throw ApplicationFailure.create({
          type: ErrorType.PveVmidTaken,
          nonRetryable: true,
          message: `VM ${input.vmid} on ${input.node} does not carry image ${input.name}'s marker: pveflow will not destroy it. An operator should check who owns it.`,
        });
      }
      if (cfg.lock === 'create') {
        throw ApplicationFailure.create({ type: ErrorType.PveTransient, message: `VM ${input.vmid} of image ${input.name} is still being created; destroying it once its lock is released` });
      }
      let upid: string;
      try {
        upid = await pve.destroyVm(input.node, input.vmid, { purge: true, 'destroy-unreferenced-disks': true });
      } catch (err) {
        if (err instanceof PveApiError && err.errorClass === 'notFound') return 'absent';
        throw pveFailure(err, s, 'destroying the image VM');
      }
      const outcome = await taskOutcome(pve, upid, poll);
      if (!outcome.ok && !/does not exist/.test(outcome.exitstatus)) throw taskFailure(outcome, s, 'destroying the image VM');
      return 'destroyed';
    },
  };

  async function removeVolume(node: string, volume: string, s: { serial: string; node: string }): Promise<void> {
    let upid: string | null;
    try {
      upid = await pve.deleteVolume(node, volume);
    } catch (err) {
      if (err instanceof PveApiError && (err.errorClass === 'notFound' || /does not exist|no such (volume|file)/i.test(err.pveMessage))) return;
      throw pveFailure(err, s, `removing ${volume}`);
    }
    if (upid) {
      const outcome = await taskOutcome(pve, upid, poll, 'preparatoryUpid');
      if (!outcome.ok && !/does not exist|no such/i.test(outcome.exitstatus)) throw taskFailure(outcome, s, `removing ${volume}`);
    }
  }

  /** Tells the workflow the download's bytes from the task log (at most every PROGRESS_EVERY_MS); never fails the download. */
  function progressReporter() {
    const workflowId = Context.current().info.workflowExecution?.workflowId ?? '';
    let last = 0;
    const report = async (upid: string) => {
      const lines = await pve.taskLogTail(upid, 1000).catch(() => [] as string[]);
      const bytes = downloadedBytes(lines);
      if (!bytes) return;
      await temporal.client.workflow
        .getHandle(workflowId)
        .signal(importProgressSignal, bytes)
        .catch(() => undefined);
    };
    return {
      tick(upid: string) {
        if (Date.now() - last < PROGRESS_EVERY_MS) return;
        last = Date.now();
        void report(upid);
      },
      flush: report,
    };
  }
}

/**
 * The bytes a download task's log reports: wget's `--progress=dot:giga` lines (`  32768K ........ ........  50% ...`:
 * the line's start, then one dot per MiB) and its `Length: N` line for the total. Undefined when it says neither.
 */
export function downloadedBytes(lines: string[]): { bytes: number; totalBytes?: number } | undefined {
  const total = lines.map((l) => /^Length: (\d+)/.exec(l)?.[1]).find((n) => n !== undefined);
  for (const line of [...lines].reverse()) {
    const m = /^\s*(\d+)K((?:\s+\.*)+)/.exec(line);
    if (!m) continue;
    const dots = (m[2]!.match(/\./g) ?? []).length;
    return { bytes: Number(m[1]) * 1024 + dots * 1024 * 1024, ...(total ? { totalBytes: Number(total) } : {}) };
  }
  return total ? { bytes: 0, totalBytes: Number(total) } : undefined;
}

function vmidTaken(s: { serial: string; vmid?: number; node?: string }, said: string): ApplicationFailure {
  return ApplicationFailure.create({ type: ErrorType.PveVmidTaken, nonRetryable: true, message: `VMID ${s.vmid} is taken (${said}) for ${s.serial}; another VMID will be reserved.` });
}
