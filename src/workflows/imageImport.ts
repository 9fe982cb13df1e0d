import { ApplicationFailure, CancellationScope, CancelledFailure, isCancellation, setHandler, upsertMemo, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { importFileName, importProgressSignal, importStatusQuery, type ImageImportInput, type ImageImportResult, type ImageTemplate, type ImportStage, type ImportState, type ImportTask } from '../contracts/imageImport';
import { imageImportSearchAttributes } from '../contracts/searchAttributes';
import { ErrorType } from '../errors';
import { apiActivities as api, cleanupActivities as undo, downloadActivities as download, taskActivities as task } from './activityProxies';
import { failureMessage } from './failureMessage';
import { underFreshVmid } from './freshVmid';

const LOG_LINES_KEPT = 200;

interface Undo {
  what: string;
  run: () => Promise<unknown>;
}

/**
 * Imports a cloud image as a template in the catalogue, as an operator would by hand (docs/operations.md's template
 * section) but through the Proxmox API alone: download onto the node's storage (Proxmox verifies the checksum), create
 * the VM from the file with the settings a build expects, make it a template, add it to the catalogue. Every stage
 * that creates something registers its undo first; a failure or a cancel runs them, newest first, and names what
 * could not be undone.
 */
export async function imageImport(input: ImageImportInput): Promise<ImageImportResult> {
  const run: ImportTask = { name: input.name, state: 'running', stage: 'queued', log: [], leftovers: [], startedAt: new Date().toISOString() };
  setHandler(importStatusQuery, () => run);
  setHandler(importProgressSignal, ({ bytes, totalBytes }) => {
    run.bytes = bytes;
    if (totalBytes !== undefined) run.totalBytes = totalBytes;
  });
  const undos: Undo[] = [];
  const log = (message: string) => {
    run.log.push({ at: new Date().toISOString(), stage: run.stage, message });
    if (run.log.length > LOG_LINES_KEPT) run.log.splice(0, run.log.length - LOG_LINES_KEPT);
  };
  const publish = () => {
    upsertSearchAttributes(imageImportSearchAttributes(run));
    upsertMemo({ importStage: run.stage });
  };
  const stage = (next: ImportStage, message: string) => {
    run.stage = next;
    log(message);
    publish();
  };
  const end = (state: ImportState) => {
    run.state = state;
    run.endedAt = new Date().toISOString();
    publish();
  };

  publish();
  try {
    stage('planning', `choosing the node(s) for image ${input.name}`);
    const plan = await api.planImageImport(input);
    run.node = plan.nodes[0];
    const source = input.source;
    log(
      (plan.nodes.length > 1 ? `a template on each of ${plan.nodes.join(', ')} (storage ${input.diskStorage} is local to each node)` : `template on node ${plan.nodes[0]}`) +
        ('url' in source ? `; download onto ${input.downloadStorage}${plan.sharedDownloadNode ? ' (shared: once for the cluster)' : plan.nodes.length > 1 ? ' on each node' : ''}` : ''),
    );

    /** The files downloaded, removed once every template holds its own copy (their undos go then too). */
    const files: Array<{ node: string; volume: string; undo: Undo }> = [];
    /** The image's file as `node` sees it: downloaded there (once for a shared storage), or the operator's volume. */
    const imageOn = async (node: string): Promise<string> => {
      if (!('url' in source)) {
        stage('downloading', `using volume ${source.volume}, already on its storage`);
        const got = await api.checkImageVolume({ name: input.name, node, volume: source.volume });
        if (got.bytes !== undefined) run.bytes = run.totalBytes = got.bytes;
        return source.volume;
      }
      if (plan.sharedDownloadNode && files[0]) return files[0].volume;
      const onNode = plan.sharedDownloadNode ?? node;
      const filename = importFileName(input.name, workflowInfo().runId, source.extension);
      const volume = `${input.downloadStorage}:import/${filename}`;
      stage('downloading', `downloading ${source.url} onto ${volume}${plan.nodes.length > 1 ? ` on ${onNode}` : ''} (${source.checksumAlgorithm} checked by Proxmox)`);
      // Registered before the download: a cancel mid-download must not leave a half file on the storage.
      const removeFile: Undo = { what: `downloaded file ${volume} on ${onNode}`, run: () => undo.removeImportVolume({ name: input.name, node: onNode, volume }) };
      undos.unshift(removeFile);
      files.push({ node: onNode, volume, undo: removeFile });
      const got = await download.downloadImage({
        name: input.name,
        node: onNode,
        storage: input.downloadStorage,
        url: source.url,
        checksum: source.checksum,
        checksumAlgorithm: source.checksumAlgorithm,
        filename,
      });
      if (got.bytes !== undefined) run.bytes = run.totalBytes = got.bytes;
      log(`downloaded ${got.bytes ?? 'an unknown number of'} bytes; checksum verified`);
      return volume;
    };

    const templates: ImageTemplate[] = [];
    run.templates = templates;
    for (const node of plan.nodes) {
      const volume = await imageOn(node);
      stage('reserving-vmid', `reserving a VMID${plan.nodes.length > 1 ? ` for the template on ${node}` : ''}`);
      let destroy: (typeof undos)[number] | undefined;
      const {
        vmid,
        made: { diskGiB },
      } = await underFreshVmid(await api.reserveVmid({ serial: `image ${input.name}`, exclude: [] }), {
        reserve: (exclude) => api.reserveVmid({ serial: `image ${input.name}`, exclude }),
        make: (vmid) => {
          stage('creating-vm', `creating VM ${vmid} on ${node} from ${volume}`);
          destroy = { what: `VM ${vmid} on ${node}`, run: () => undo.destroyImageVm({ name: input.name, node, vmid }) };
          undos.unshift(destroy);
          return task.createImageVm({
            name: input.name,
            os: input.os,
            node,
            vmid,
            volume,
            diskStorage: input.diskStorage,
            cores: input.minimum.cores ?? 1,
            memoryMiB: input.minimum.memoryMiB ?? 1024,
          });
        },
        disown: () => undos.splice(undos.indexOf(destroy!), 1), // not ours: never touch it
        retrying: (vmid) => log(`VMID ${vmid} was taken meanwhile; reserving another`),
      });
      run.templateVmid ??= vmid;
      log(`VM ${vmid} created${diskGiB === undefined ? '' : `, its disk ${diskGiB} GiB`}`);
      if (input.minimum.diskGiB !== undefined && diskGiB !== undefined && input.minimum.diskGiB < diskGiB) {
        throw ApplicationFailure.create({
          type: ErrorType.InvalidRequest,
          nonRetryable: true,
          message: `min_disk_gib ${input.minimum.diskGiB} is below what image ${input.name} needs: its disk is ${diskGiB} GiB. Import again with min_disk_gib of at least ${diskGiB}, or without it.`,
        });
      }

      stage('templating', `making VM ${vmid} a template`);
      await task.convertImageToTemplate({ name: input.name, node, vmid });
      templates.push({ node, vmid, ...(diskGiB !== undefined ? { diskGiB } : {}) });
    }
    // Every template holds its own copy of the disk: the downloaded files are no longer needed.
    for (const file of files) {
      await undo.removeImportVolume({ name: input.name, node: file.node, volume: file.volume });
      undos.splice(undos.indexOf(file.undo), 1);
      log(`removed ${file.volume} on ${file.node}: the template has its own copy`);
    }
    const first = templates[0]!;

    stage('cataloguing', `adding image ${input.name} to the catalogue`);
    await api.catalogueImage({
      name: input.name,
      template: first.vmid,
      templates,
      os: input.os,
      ...(input.description ? { description: input.description } : {}),
      ...(input.minimum.cores !== undefined ? { min_cores: input.minimum.cores } : {}),
      ...(input.minimum.memoryMiB !== undefined ? { min_memory_mib: input.minimum.memoryMiB } : {}),
      ...(input.minimum.diskGiB !== undefined ? { min_disk_gib: input.minimum.diskGiB } : {}),
      ...(input.orgs ? { orgs: input.orgs } : {}),
      origin: 'import',
      importedBy: workflowInfo().workflowId,
      addedAt: new Date().toISOString(),
    });
    stage('done', `image ${input.name} is template ${templates.map((t) => `${t.vmid} on ${t.node}`).join(', ')}, in the catalogue`);
    end('completed');
    return { name: input.name, templateVmid: first.vmid, node: first.node, templates };
  } catch (err) {
    const cancelled = isCancellation(err) || CancellationScope.current().consideredCancelled;
    run.state = cancelled ? 'cancelling' : 'failed';
    run.error = cancelled ? 'cancelled' : failureMessage(err);
    log(cancelled ? 'cancelled: removing what was made' : `failed at ${run.stage}: ${run.error}; removing what was made`);
    await CancellationScope.nonCancellable(async () => {
      for (const step of undos) {
        try {
          await step.run();
          log(`removed: ${step.what}`);
        } catch (undoErr) {
          run.leftovers.push(step.what);
          log(`could not remove ${step.what}: ${failureMessage(undoErr)}`);
        }
      }
    });
    if (cancelled) {
      end('cancelled');
      throw isCancellation(err) ? err : new CancelledFailure('cancelled', [], err instanceof Error ? err : undefined);
    }
    end('failed');
    throw ApplicationFailure.create({
      type: 'ImageImportFailed',
      nonRetryable: true,
      message: `import of image ${input.name} failed at stage ${run.stage}: ${run.error}${run.leftovers.length ? `; left behind (remove by hand): ${run.leftovers.join(', ')}` : ''}`,
      details: [run],
    });
  }
}
