import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import type { UpdateDefinition } from '@temporalio/common';
import { Router, type Request, type Response } from 'express';
import type { z } from 'zod';
import type { DeviceRequest } from '../../domain/deviceRequest';
import { deviceRequestSchema } from '../../domain/deviceRequest';
import {
  approveUpdate,
  buildStatusQuery,
  cancelUpdate,
  completeUpdate,
  rebuildUpdate,
  rejectUpdate,
  statusQuery,
  type UpdateResult,
} from '../../workflows/messages';
import { ConsultantsKey, OrgKey, RequestStatusKey, SerialKey } from '../../workflows/searchAttributes';
import type { RequestRecord } from '../../workflows/types';
import type { vmRequest } from '../../workflows/vmRequest';
import { badRequest } from '../problems';
import { actorBody, createDeviceRequestBody, rejectBody, serialParam, type CreateDeviceRequestBody } from '../schemas';
import { newSerial, requestWorkflowId } from '../serials';
import { sendTemporalError } from '../temporalErrors';

export interface DeviceRequestRoutesDeps {
  client: Client;
  taskQueue: string;
}

/** `/api/device_requests`: submit, read, and move a request through its life. Every action is a Workflow Update. */
export function deviceRequestRoutes({ client, taskQueue }: DeviceRequestRoutesDeps): Router {
  const router = Router();

  router.post('/', async (req, res) => {
    const body = createDeviceRequestBody.safeParse(req.body ?? {});
    if (!body.success) return badRequest(res, body.error);
    // A serial collision is astronomically rare, but the workflow id is the source of uniqueness: try again.
    for (let i = 0; i < 3; i++) {
      const request = toDeviceRequest(newSerial(), body.data);
      try {
        await client.workflow.start<typeof vmRequest>('vmRequest', {
          workflowId: requestWorkflowId(request.serial),
          taskQueue,
          args: [{ request }],
          typedSearchAttributes: [
            { key: SerialKey, value: request.serial },
            { key: OrgKey, value: request.org },
            { key: RequestStatusKey, value: 'Pending' },
            { key: ConsultantsKey, value: request.consultants },
          ],
          staticSummary: `${request.serial}: ${request.name} for ${request.org}`,
          staticDetails: `Requested by ${request.requester} for ${request.consultants.join(', ')}, ${request.period.start} → ${request.period.end}; ${request.cores} cores, ${request.memoryMiB} MiB.`,
        });
        return res.status(201).location(`/api/device_requests/${request.serial}`).json({ serial: request.serial, status: 'Pending' });
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError) continue;
        return sendTemporalError(res, err);
      }
    }
    return sendTemporalError(res, new Error('could not allocate a unique serial'));
  });

  router.get('/:serial', async (req, res) => {
    const serial = serialOf(req, res);
    if (!serial) return;
    try {
      const handle = client.workflow.getHandle(requestWorkflowId(serial));
      const record = await handle.query(statusQuery);
      res.json(await withLiveBuild(client, record));
    } catch (err) {
      sendTemporalError(res, err, serial);
    }
  });

  const action = <A>(name: string, update: UpdateDefinition<UpdateResult, [A]>, schema: z.ZodType<A>) => {
    router.post(`/:serial/${name}`, async (req, res) => {
      const serial = serialOf(req, res);
      if (!serial) return;
      const args = schema.safeParse(req.body ?? {});
      if (!args.success) return badRequest(res, args.error);
      try {
        const handle = client.workflow.getHandle(requestWorkflowId(serial));
        const result: UpdateResult = await handle.executeUpdate(update, { args: [args.data] });
        res.json(result);
      } catch (err) {
        sendTemporalError(res, err, serial);
      }
    });
  };
  action('approve', approveUpdate, actorBody);
  action('reject', rejectUpdate, rejectBody);
  action('rebuild', rebuildUpdate, actorBody);
  action('complete', completeUpdate, actorBody);
  action('cancel', cancelUpdate, actorBody);

  return router;
}

function serialOf(req: Request, res: Response): string | undefined {
  const parsed = serialParam.safeParse(req.params);
  if (!parsed.success) {
    badRequest(res, parsed.error, 'path');
    return undefined;
  }
  return parsed.data.serial;
}

function toDeviceRequest(serial: string, b: CreateDeviceRequestBody): DeviceRequest {
  return deviceRequestSchema.parse({
    serial,
    name: b.name,
    org: b.client,
    requester: b.requester,
    consultants: b.consultants,
    period: b.period,
    templateVmid: b.template_vmid,
    cores: b.cores,
    memoryMiB: b.memory_mib,
    fullClone: b.full_clone,
    sshKeys: b.ssh_keys,
  });
}

/** While a build runs, its own workflow holds the live stage, progress and log: ask it rather than keep a copy. */
async function withLiveBuild(client: Client, record: RequestRecord): Promise<RequestRecord> {
  const build = record.build;
  if (!build || ['completed', 'failed', 'cancelled'].includes(build.state)) return record;
  try {
    return { ...record, build: await client.workflow.getHandle(build.workflowId).query(buildStatusQuery) };
  } catch {
    return record; // the build has not started yet, or just ended: the request's own view is the truth then
  }
}
