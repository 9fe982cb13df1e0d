import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import { Router, type Response } from 'express';
import { IMAGE_MEMO, type ImageMemo } from '../../contracts/memos';
import { deleteImageUpdate, retireImageUpdate, updateImageUpdate } from '../../contracts/imageCatalogueMessages';
import { importStatusQuery, type ImageImportInput, type ImportTask } from '../../contracts/imageImport';
import { imageImportWorkflowId, imageTemplateRemovalWorkflowId } from '../../contracts/workflowIds';
import type { CatalogueEntry } from '../../domain/catalogueRules';
import { taskQueueClause } from '../../domain/instanceScope';
import type { imageImport } from '../../workflows/imageImport';
import type { imageTemplateRemoval, ImageTemplateRemovalInput } from '../../workflows/imageTemplateRemoval';
import { permit } from '../auth/authenticate';
import { orgOf } from '../auth/permissions';
import type { ApiContext } from '../http/context';
import { badRequest, badRequestIssues, problem } from '../http/problems';
import { sendTemporalError } from '../http/temporalErrors';
import { catalogueHandle, catalogueRefusal, catalogueState } from './catalogueStore';
import { checksumHexLength, diskImageExtensionOf, imageImportBody, imageNameParam, imageUpdateBody, type ImageImportBody } from './catalogueSchemas';
import { currentCatalogue } from './imageCatalogue';
import { importUrlRefusal } from './importUrlPolicy';

/** A catalogue entry on the wire; orgs for operators only, and the template(s) as the last sync found them. */
function entryAnswer(e: CatalogueEntry, found: { templateVmid: number; node: string; templates?: Array<{ node: string; vmid: number }> } | undefined, operator: boolean) {
  return {
    name: e.name,
    ...(e.os ? { os: e.os } : {}),
    ...(e.description ? { description: e.description } : {}),
    template: e.template,
    ...(found ? { template_vmid: found.templateVmid, node: found.node } : {}),
    ...(found?.templates ? { templates: found.templates.map((t) => ({ node: t.node, vmid: t.vmid })) } : {}),
    ...(e.min_cores !== undefined ? { min_cores: e.min_cores } : {}),
    ...(e.min_memory_mib !== undefined ? { min_memory_mib: e.min_memory_mib } : {}),
    ...(e.min_disk_gib !== undefined ? { min_disk_gib: e.min_disk_gib } : {}),
    ...(operator && e.orgs ? { orgs: e.orgs } : {}),
    retired: !!e.retired,
    origin: e.origin,
    added_at: e.addedAt,
  };
}

export function importAnswer(workflowId: string, t: ImportTask) {
  return {
    name: t.name,
    workflow_id: workflowId,
    state: t.state,
    stage: t.stage,
    ...(t.bytes !== undefined ? { bytes: t.bytes } : {}),
    ...(t.totalBytes !== undefined ? { total_bytes: t.totalBytes } : {}),
    ...(t.node ? { node: t.node } : {}),
    ...(t.templateVmid !== undefined ? { template_vmid: t.templateVmid } : {}),
    ...(t.templates?.length ? { templates: t.templates.map((m) => ({ node: m.node, vmid: m.vmid })) } : {}),
    ...(t.error ? { error: t.error } : {}),
    leftovers: t.leftovers,
    log: t.log,
    started_at: t.startedAt,
    ...(t.endedAt ? { ended_at: t.endedAt } : {}),
  };
}

/**
 * The catalogue's own operations under /api/images: show an image, import one (an imageImport workflow), update,
 * retire, delete. Everyone may read what their org may use (another org's image does not exist for them: 404);
 * operators manage.
 */
export function catalogueRoutes(ctx: ApiContext): Router {
  const router = Router();

  const refusedOr = (res: Response, err: unknown) => {
    const r = catalogueRefusal(err);
    if (!r) return sendTemporalError(res, err);
    if (r.notFound) return problem(res, 404, 'not found', r.reason);
    if (r.conflict) return problem(res, 409, 'conflict', r.reason);
    return badRequestIssues(res, [{ field: r.field, reason: r.reason }]);
  };

  router.get('/:name', async (req, res) => {
    const principal = permit(res, 'images');
    if (!principal) return;
    const params = imageNameParam.safeParse(req.params);
    if (!params.success) return badRequest(res, params.error, 'path');
    try {
      const [state, catalogue] = await Promise.all([catalogueState(ctx), currentCatalogue(ctx).catch(() => undefined)]);
      const org = orgOf(principal);
      const entry = state.entries.find((e) => e.name === params.data.name && (org === undefined || !e.orgs || e.orgs.includes(org)));
      if (!entry) return problem(res, 404, 'not found', `no image ${params.data.name}`);
      const found = catalogue?.images.find((i) => i.name === entry.name);
      res.json(entryAnswer(entry, found, org === undefined));
    } catch (err) {
      sendTemporalError(res, err);
    }
  });

  router.post('/', async (req, res) => {
    const principal = permit(res, 'manage-images');
    if (!principal) return;
    const parsed = imageImportBody.safeParse(req.body);
    if (!parsed.success) return badRequest(res, parsed.error);
    const settings = ctx.choices.imageImports;
    const input = importInputFor(parsed.data, principal.id, settings?.refuseLocalUrls ?? false, settings?.diskStorage);
    if ('issues' in input) return badRequestIssues(res, input.issues);
    try {
      const state = await catalogueState(ctx);
      if (state.entries.some((e) => e.name === input.name)) return problem(res, 409, 'conflict', `an image named ${input.name} exists already; choose another name or delete that image first`);
      const workflowId = imageImportWorkflowId(ctx.taskQueue, input.name);
      await ctx.temporal(() =>
        ctx.client.workflow.start<typeof imageImport>('imageImport', {
          workflowId,
          taskQueue: ctx.taskQueue,
          args: [input],
          // A running import of the same name is refused; a finished one (failed, cancelled, deleted since) may be repeated.
          workflowIdConflictPolicy: 'FAIL',
          staticSummary: `image import: ${input.name}`,
          staticDetails: 'url' in input.source ? `${input.source.url} (${input.source.checksumAlgorithm} ${input.source.checksum})` : input.source.volume,
        }),
      );
      res
        .status(202)
        .location(`/api/image-imports/${input.name}`)
        .json({ name: input.name, workflow_id: workflowId, status_url: `/api/image-imports/${input.name}` });
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) return problem(res, 409, 'conflict', `an import of image ${input.name} is running already (GET /api/image-imports/${input.name})`);
      sendTemporalError(res, err);
    }
  });

  router.patch('/:name', async (req, res) => {
    if (!permit(res, 'manage-images')) return;
    const params = imageNameParam.safeParse(req.params);
    if (!params.success) return badRequest(res, params.error, 'path');
    const body = imageUpdateBody.safeParse(req.body);
    if (!body.success) return badRequest(res, body.error);
    try {
      const entry = await ctx.temporal(() => catalogueHandle(ctx).executeUpdate(updateImageUpdate, { args: [{ name: params.data.name, patch: body.data }] }));
      res.json(entryAnswer(entry, undefined, true));
    } catch (err) {
      refusedOr(res, err);
    }
  });

  router.post('/:name/retire', async (req, res) => {
    if (!permit(res, 'manage-images')) return;
    const params = imageNameParam.safeParse(req.params);
    if (!params.success) return badRequest(res, params.error, 'path');
    try {
      await catalogueState(ctx);
      const entry = await ctx.temporal(() => catalogueHandle(ctx).executeUpdate(retireImageUpdate, { args: [{ name: params.data.name }] }));
      res.json(entryAnswer(entry, undefined, true));
    } catch (err) {
      refusedOr(res, err);
    }
  });

  router.delete('/:name', async (req, res) => {
    if (!permit(res, 'manage-images')) return;
    const params = imageNameParam.safeParse(req.params);
    if (!params.success) return badRequest(res, params.error, 'path');
    try {
      const catalogue = await currentCatalogue(ctx).catch(() => undefined);
      const state = await catalogueState(ctx);
      const entry = state.entries.find((e) => e.name === params.data.name);
      if (!entry) return problem(res, 404, 'not found', `no image ${params.data.name} in the catalogue`);
      const templateVmid = typeof entry.template === 'number' ? entry.template : catalogue?.images.find((i) => i.name === entry.name)?.templateVmid;
      const usedBy = await requestsUsing(ctx, entry.name, templateVmid);
      await ctx.temporal(() => catalogueHandle(ctx).executeUpdate(deleteImageUpdate, { args: [{ name: entry.name, usedBy }] }));
      // Out of the catalogue first (no new request may name it), then its template, when pveflow imported it.
      if (entry.origin === 'import' && templateVmid !== undefined) {
        const recorded = entry.templates ?? [];
        const node = recorded.find((t) => t.vmid === templateVmid)?.node ?? catalogue?.images.find((i) => i.name === entry.name)?.node ?? (await importedNode(ctx, entry));
        const others = recorded.filter((t) => t.vmid !== templateVmid).map((t) => ({ node: t.node, vmid: t.vmid }));
        if (node) await startTemplateRemoval(ctx, { name: entry.name, node, vmid: templateVmid, ...(others.length ? { others } : {}) });
      }
      res.status(204).end();
    } catch (err) {
      refusedOr(res, err);
    }
  });

  return router;
}

/** `/api/image-imports/:name`: an import's progress (its log, bytes, stage), and its cancel. Operators only. */
export function imageImportRoutes(ctx: ApiContext): Router {
  const router = Router();
  router.get('/:name', async (req, res) => {
    if (!permit(res, 'manage-images')) return;
    const params = imageNameParam.safeParse(req.params);
    if (!params.success) return badRequest(res, params.error, 'path');
    const workflowId = imageImportWorkflowId(ctx.taskQueue, params.data.name);
    try {
      const status = await ctx.temporal(() => ctx.client.workflow.getHandle(workflowId).query(importStatusQuery));
      res.json(importAnswer(workflowId, status));
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return problem(res, 404, 'not found', `no import of image ${params.data.name}`);
      sendTemporalError(res, err);
    }
  });
  router.delete('/:name', async (req, res) => {
    if (!permit(res, 'manage-images')) return;
    const params = imageNameParam.safeParse(req.params);
    if (!params.success) return badRequest(res, params.error, 'path');
    const workflowId = imageImportWorkflowId(ctx.taskQueue, params.data.name);
    try {
      const handle = ctx.client.workflow.getHandle(workflowId);
      const described = await ctx.temporal(() => handle.describe());
      if (described.status.name !== 'RUNNING') return problem(res, 409, 'conflict', `the import of image ${params.data.name} has ended (${described.status.name.toLowerCase()}): nothing to cancel`);
      await ctx.temporal(() => handle.cancel());
      res.status(202).json({ name: params.data.name, workflow_id: workflowId, status_url: `/api/image-imports/${params.data.name}` });
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return problem(res, 404, 'not found', `no import of image ${params.data.name}`);
      sendTemporalError(res, err);
    }
  });
  return router;
}

/** The checked body in the workflow's words, or the issues a 400 names (the URL policy, the checksum, the format). */
export function importInputFor(b: ImageImportBody, requestedBy: string, refuseLocal: boolean, diskStorage = 'local-lvm'): ImageImportInput | { issues: Array<{ field: string; reason: string; rule: string }> } {
  // Each refusal names its rule, as the document's descriptions state them (a rule between fields is no schema).
  const issues: Array<{ field: string; reason: string; rule: string }> = [];
  if ((b.url === undefined) === (b.volume === undefined)) issues.push({ field: 'url', reason: 'give either url (with checksum and checksum_algorithm) or volume', rule: 'image-source' });
  let source: ImageImportInput['source'] | undefined;
  if (b.url !== undefined) {
    const refused = importUrlRefusal(b.url, { refuseLocal });
    if (refused) issues.push({ field: 'url', reason: refused, rule: 'image-url' });
    const extension = refused ? undefined : diskImageExtensionOf(new URL(b.url));
    if (!refused && !extension) issues.push({ field: 'url', reason: 'the URL must name a disk image file ending in .qcow2, .img, .raw or .vmdk (compressed images are not imported)', rule: 'image-url' });
    if (!b.checksum) issues.push({ field: 'checksum', reason: 'required with url: Proxmox verifies the file against it', rule: 'image-source' });
    if (!b.checksum_algorithm) issues.push({ field: 'checksum_algorithm', reason: 'required with url', rule: 'image-source' });
    if (b.checksum && b.checksum_algorithm && b.checksum.length !== checksumHexLength[b.checksum_algorithm]) {
      issues.push({ field: 'checksum', reason: `a ${b.checksum_algorithm} checksum has ${checksumHexLength[b.checksum_algorithm]} hex digits, not ${b.checksum.length}`, rule: 'checksum-length' });
    }
    if (extension && b.checksum && b.checksum_algorithm) source = { url: b.url, checksum: b.checksum.toLowerCase(), checksumAlgorithm: b.checksum_algorithm, extension };
  } else if (b.volume !== undefined) {
    if (b.checksum || b.checksum_algorithm) issues.push({ field: 'checksum', reason: 'only with url: a volume already on a storage is not downloaded', rule: 'image-source' });
    source = { volume: b.volume };
  }
  if (issues.length || !source) return { issues };
  return {
    name: b.name,
    os: b.os,
    ...(b.description ? { description: b.description } : {}),
    minimum: {
      ...(b.min_cores !== undefined ? { cores: b.min_cores } : {}),
      ...(b.min_memory_mib !== undefined ? { memoryMiB: b.min_memory_mib } : {}),
      ...(b.min_disk_gib !== undefined ? { diskGiB: b.min_disk_gib } : {}),
    },
    ...(b.orgs ? { orgs: b.orgs } : {}),
    source,
    ...(b.node ? { node: b.node } : {}),
    downloadStorage: b.download_storage,
    diskStorage: b.disk_storage ?? diskStorage,
    requestedBy,
  };
}

/** The node its import made the template on, as the import workflow answers (until its history is gone). */
async function importedNode(ctx: ApiContext, entry: CatalogueEntry): Promise<string | undefined> {
  const workflowId = entry.importedBy ?? imageImportWorkflowId(ctx.taskQueue, entry.name);
  return ctx
    .temporal(() => ctx.client.workflow.getHandle(workflowId).query(importStatusQuery))
    .then((t) => t.node)
    .catch(() => undefined);
}

/**
 * The deleted image's template removed by its own workflow (retried like a build's cleanup, seen in Temporal UI); the
 * activity destroys only a VM carrying the image's marker. A removal of that name already running is the same one.
 */
async function startTemplateRemoval(ctx: ApiContext, input: ImageTemplateRemovalInput): Promise<void> {
  await ctx.temporal(() =>
    ctx.client.workflow.start<typeof imageTemplateRemoval>('imageTemplateRemoval', {
      workflowId: imageTemplateRemovalWorkflowId(ctx.taskQueue, input.name),
      taskQueue: ctx.taskQueue,
      args: [input],
      workflowIdConflictPolicy: 'USE_EXISTING',
      staticSummary: `template removal: image ${input.name} (VM ${input.vmid} on ${input.node})`,
    }),
  );
}

/**
 * The running requests of this instance built from the image (by name, or by its template), as their memo says
 * (written at submission): one listing, however many requests.
 */
async function requestsUsing(ctx: ApiContext, name: string, templateVmid: number | undefined): Promise<string[]> {
  const query = `WorkflowType = "vmRequest" AND ${taskQueueClause(ctx.taskQueue)} AND ExecutionStatus = "Running"`;
  return ctx.temporal(async () => {
    const out: string[] = [];
    for await (const w of ctx.client.workflow.list({ query, pageSize: 1000 })) {
      const memo = w.memo?.[IMAGE_MEMO] as ImageMemo | undefined;
      if (memo && (memo.name === name || (templateVmid !== undefined && memo.templateVmid === templateVmid))) out.push(w.workflowId.replace(/^vm-request-/, ''));
    }
    return out;
  });
}
