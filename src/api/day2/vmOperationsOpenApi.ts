import type { RouteConfig } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { rolesFor, type Action } from '../auth/permissions';
import { idempotencyHeaders, problemSchema, serialParam } from '../../contracts/apiSchemas';
import {
  migrateBody,
  operationAcceptedSchema,
  operationAnswerSchema,
  operationNoteBody,
  operationParams,
  powerBody,
  reconfigureBody,
  snapshotBody,
  snapshotListSchema,
  snapshotParams,
} from '../../contracts/vmOperationSchemas';

type Response = { description: string; content?: Record<string, { schema: z.ZodType }> };

/** What the document's own helpers give (src/api/openapi.ts), so that these paths answer as every other one. */
export interface OperationDocHelpers {
  op(config: RouteConfig): void;
  secured: Array<Record<string, string[]>>;
  problems: Record<401 | 403, Response>;
  invalidBody: Response;
  notFound: Response;
  tooLarge: Response;
  tooMany: Response;
  temporal: Record<503 | 504, Response>;
}

/** The day-2 operations' paths in the OpenAPI document (src/api/routes/vmOperations.ts serves them). */
export function registerVmOperationPaths(h: OperationDocHelpers): void {
  const json = <T extends z.ZodType>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });
  const who = (action: Action) => `Roles: ${rolesFor[action].join(', ')} (requesters and admins on their org's requests).`;
  const common =
    'A Workflow Update on the request: answered once the operation has ended, recorded on the timeline with the key holder and the note; ' +
    'an operation still running after API_OPERATION_WAIT_MS is answered 202 with its own path (`Location`), where its outcome appears. ' +
    'Only while the request is Fulfilled and no completion was asked for, and one operation at a time per request. ' +
    'With an Idempotency-Key, a retry is the same operation, done once: it answers as the first did.';
  const headers = idempotencyHeaders.extend({
    'idempotency-key': idempotencyHeaders.shape['idempotency-key'].meta({
      description: 'Your unique id for this operation (e.g. a UUID). A retry with the same key is the same operation: done once, answered alike.',
    }),
  });
  const answers = (refused: string) => ({
    200: json(operationAnswerSchema, 'Done: the operation as it ended (what it did in `outcome`), and the VM as it left it.'),
    202: {
      ...json(operationAcceptedSchema, 'Accepted and still running after API_OPERATION_WAIT_MS: GET `outcome` (the `Location`) until the operation has ended.'),
      headers: z.object({ location: z.string().meta({ description: "The operation's own path, where its outcome appears." }) }),
    },
    400: h.invalidBody,
    ...h.problems,
    404: h.notFound,
    409: json(problemSchema, refused),
    413: h.tooLarge,
    429: h.tooMany,
    502: json(operationAnswerSchema.extend({ error: z.string(), detail: z.string() }), 'The operation failed on the cluster: `detail` says what Proxmox said; the operation is on the record as failed.'),
    ...h.temporal,
    504: json(problemSchema, 'Temporal did not confirm in time that the request accepted the operation: it may or may not run. `outcome` is where it appears if it does.'),
  });
  const state = "The request's state does not allow it (not Fulfilled, being completed), another operation is running (named), or this Idempotency-Key was used for another operation";
  const body = <T extends z.ZodType>(schema: T, required = true) => ({ required, content: { 'application/json': { schema } } });

  h.op({
    method: 'post',
    path: '/api/device_requests/{serial}/power',
    operationId: 'powerVm',
    summary: "Start, shut down, reboot or stop the request's VM",
    description: `shutdown and reboot are graceful; a guest that ignores them within REQUEST_SHUTDOWN_TIMEOUT_S is stopped (and started). ${common} ${who('power')}`,
    security: h.secured,
    request: { params: serialParam, headers, body: body(powerBody) },
    responses: answers(`${state}.`),
  });
  h.op({
    method: 'post',
    path: '/api/device_requests/{serial}/reconfigure',
    operationId: 'reconfigureVm',
    summary: "Change the VM's cores, memory or disk size",
    description:
      'Applied live where Proxmox hot-plugs it (the disk always; CPUs and memory when the VM’s hotplug option allows, memory with NUMA on); ' +
      'otherwise it needs a reboot, which is done only with `confirm_reboot: true` (without it: 409 saying what needs it, nothing changed). ' +
      `A disk never shrinks (409). ${common} ${who('reconfigure')}`,
    security: h.secured,
    request: { params: serialParam, headers, body: body(reconfigureBody) },
    responses: answers(
      `${state}; or the change needs a reboot that was not confirmed, or would shrink the disk; or \`quota exceeded\`: the VM at its new size and the org's other open requests would pass a quota (\`quota\` names it, its use and the limit). Nothing changed.`,
    ),
  });
  h.op({
    method: 'get',
    path: '/api/device_requests/{serial}/snapshots',
    operationId: 'listSnapshots',
    summary: "The request's snapshots",
    description: `The snapshots pveflow took for the request, oldest first, and the limit (REQUEST_SNAPSHOT_LIMIT as this API is configured). ${who('read')}`,
    security: h.secured,
    request: { params: serialParam },
    responses: { 200: json(snapshotListSchema, 'The snapshots.'), 400: h.invalidBody, ...h.problems, 404: h.notFound, ...h.temporal },
  });
  h.op({
    method: 'get',
    path: '/api/device_requests/{serial}/operations/{operation_id}',
    operationId: 'getVmOperation',
    summary: 'One day-2 operation and its outcome',
    description: `The operation as the request records it (\`running\` until it has ended), and the VM as it is now: where a 202 or a lost answer of a day-2 call sends the caller. ${who('read')}`,
    security: h.secured,
    request: { params: operationParams },
    responses: {
      200: json(operationAnswerSchema, 'The operation (its `state` and `outcome`), and the VM as it is now.'),
      400: h.invalidBody,
      ...h.problems,
      404: json(problemSchema, 'No such request for your key, or the request has no operation of that id (never accepted, or older than the operations it keeps).'),
      ...h.temporal,
    },
  });
  h.op({
    method: 'post',
    path: '/api/device_requests/{serial}/snapshots',
    operationId: 'createSnapshot',
    summary: 'Take a snapshot of the VM',
    description: `Optionally with the running guest's memory (\`with_ram\`). At most REQUEST_SNAPSHOT_LIMIT per request. ${common} ${who('snapshot')}`,
    security: h.secured,
    request: { params: serialParam, headers, body: body(snapshotBody) },
    responses: answers(`${state}; or the request holds its limit of snapshots, or one of that name.`),
  });
  h.op({
    method: 'post',
    path: '/api/device_requests/{serial}/snapshots/{name}/revert',
    operationId: 'revertSnapshot',
    summary: 'Put the VM back as a snapshot has it',
    description: `A VM that was running runs again afterwards (a snapshot with RAM resumes where it was). Proxmox restores the VM's size as the snapshot has it: the request states that size afterwards, and the org's quotas count it first. ${common} ${who('snapshot')}`,
    security: h.secured,
    request: { params: snapshotParams, headers, body: body(operationNoteBody, false) },
    responses: answers(`${state}; or the request has no snapshot of that name; or \`quota exceeded\`: the size the snapshot brings back would pass one of the org's quotas (\`quota\` names it). Nothing changed.`),
  });
  h.op({
    method: 'delete',
    path: '/api/device_requests/{serial}/snapshots/{name}',
    operationId: 'deleteSnapshot',
    summary: 'Delete a snapshot',
    description: `${common} ${who('snapshot')}`,
    security: h.secured,
    request: { params: snapshotParams, headers, body: body(operationNoteBody, false) },
    responses: answers(`${state}; or the request has no snapshot of that name.`),
  });
  h.op({
    method: 'post',
    path: '/api/device_requests/{serial}/migrate',
    operationId: 'migrateVm',
    summary: 'Move the VM to another node',
    description: `Online when it runs; its cloud-init snippet follows it to the new node. ${common} ${who('migrate')}`,
    security: h.secured,
    request: { params: serialParam, headers, body: body(migrateBody) },
    responses: answers(`${state}; or the VM is on that node already.`),
  });
}
