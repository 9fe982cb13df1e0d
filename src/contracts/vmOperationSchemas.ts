import { POWER_ACTIONS } from './vmOperations';
import { z } from 'zod';
import { NODE_NAME, SNAPSHOT_NAME } from './operationArguments';
import { requestLimits } from '../domain/requestLimits';
import type { OperationRecord, OperationResult, SnapshotRecord } from './vmOperations';

/**
 * The wire of the day-2 operations (`/api/device_requests/{serial}/power|reconfigure|snapshots|migrate`): the bodies
 * the routes parse (and the OpenAPI document shows), and the answers. The bounds are the workflow's own
 * (src/contracts/operationArguments.ts), checked here first so that bad input is a 400 naming the field.
 */

const note = z.string().max(2000).optional().meta({ description: 'Why: recorded on the request timeline with the key holder.' });

export const powerBody = z
  .strictObject({
    action: z.enum(POWER_ACTIONS).meta({
      description: 'shutdown and reboot are graceful (ACPI, or the guest agent when it answers); a guest that ignores them past the bound is stopped (and started).',
    }),
    note,
  })
  .meta({ id: 'PowerAction' });

export const reconfigureBody = z
  .strictObject({
    cores: z.number().int().min(requestLimits.cores.min).max(requestLimits.cores.max).optional(),
    memory_mib: z.number().int().min(requestLimits.memoryMiB.min).max(requestLimits.memoryMiB.max).optional(),
    disk_gib: z
      .number()
      .int()
      .min(requestLimits.diskGiB.min)
      .max(requestLimits.diskGiB.max)
      .optional()
      .meta({ description: 'The boot disk’s new size: disks only grow, to at most REQUEST_MAX_DISK_GIB (else 400, rule choice-limit).' }),
    confirm_reboot: z.boolean().optional().meta({
      description: 'A change Proxmox cannot hot-plug into the running VM needs a reboot: without this it is refused (409, saying why) and nothing changes.',
    }),
    note,
  })
  .refine((b) => b.cores !== undefined || b.memory_mib !== undefined || b.disk_gib !== undefined, {
    message: 'give cores, memory_mib or disk_gib: there is nothing to change',
    path: ['cores'],
    params: { rule: 'nothing-to-change' },
  })
  .meta({
    id: 'Reconfigure',
    description: 'At least one of cores, memory_mib and disk_gib (else 400, rule nothing-to-change).',
    // The refinement above, stated so a client reading the document knows it (a schema cannot say it otherwise).
    anyOf: [{ required: ['cores'] }, { required: ['memory_mib'] }, { required: ['disk_gib'] }],
  });

const snapshotName = z
  .string()
  .regex(SNAPSHOT_NAME, 'must start with a letter and hold only letters, digits, - and _ (2 to 40 characters: Proxmox’s pve-configid)')
  .refine((n) => n !== 'current' && n !== 'pending', { message: 'current and pending are Proxmox’s own names', params: { rule: 'reserved-snapshot-name' } })
  .meta({ description: 'Not current or pending, Proxmox’s own names (else 400, rule reserved-snapshot-name).' });

export const snapshotBody = z
  .strictObject({
    name: snapshotName,
    with_ram: z.boolean().optional().meta({ description: 'Save the running guest’s memory too: a revert resumes it where it was.' }),
    description: z.string().max(500).optional(),
    note,
  })
  .meta({ id: 'SnapshotCreate' });

export const snapshotParams = z.strictObject({
  serial: z.string().regex(/^VM-[0-9A-Z]{5}$/, 'must look like VM-XXXXX'),
  name: snapshotName,
});

export const operationNoteBody = z.strictObject({ note }).meta({ id: 'OperationNote' });

export const migrateBody = z.strictObject({ target: z.string().regex(NODE_NAME, 'must be a node name').meta({ example: 'pve2' }), note }).meta({ id: 'Migrate' });

const snapshotSchema = z.object({ name: z.string(), taken_at: z.string(), by: z.string(), with_ram: z.boolean(), description: z.string().optional() }).meta({ id: 'Snapshot' });

export const operationSchema = z
  .object({
    id: z.string(),
    what: z.string().meta({ example: 'power shutdown' }),
    state: z.enum(['running', 'succeeded', 'failed', 'refused']),
    outcome: z.string().optional().meta({ description: 'What it did, or why it failed.' }),
    by: z.string(),
    role: z.enum(['requester', 'admin', 'operator']),
    note: z.string().optional(),
    started_at: z.string(),
    ended_at: z.string().optional(),
  })
  .meta({ id: 'VmOperation' });

export const operationAnswerSchema = z
  .object({
    serial: z.string(),
    status: z.string(),
    operation: operationSchema,
    node: z.string().optional(),
    power: z.enum(['running', 'stopped']).optional(),
    snapshots: z.array(snapshotSchema),
  })
  .meta({ id: 'VmOperationResult' });

/**
 * How long a day-2 call waits for its operation to end by default, once the request accepted it (API_OPERATION_WAIT_MS):
 * a real guest's reboot or shutdown outlasts the API's 10 s Temporal deadline; 50 s still answers before the 60 s a
 * reverse proxy usually waits (nginx's proxy_read_timeout). Past it the answer is 202 with the operation's path.
 */
export const OPERATION_WAIT_DEFAULT_MS = 50_000;
/** How long the API's own clients (console, CLI) wait for a day-2 answer: the wait, the acceptance, and the network. */
export const OPERATION_ANSWER_WITHIN_MS = OPERATION_WAIT_DEFAULT_MS + 20_000;

/** The path of one day-2 operation on a request: where its outcome appears. */
export const operationPath = (serial: string, id: string) => `/api/device_requests/${serial}/operations/${encodeURIComponent(id)}`;

export const operationParams = z.strictObject({
  serial: z.string().regex(/^VM-[0-9A-Z]{5}$/, 'must look like VM-XXXXX'),
  operation_id: z
    .string()
    .regex(/^[kr]-[0-9a-f-]{1,64}$/, 'must be an operation id as a day-2 answer gives it')
    .meta({ example: 'r-3f0c2f9e-6a55-4d8e-9a4b-0c6f1f7f4d21' }),
});

export const operationAcceptedSchema = z
  .object({
    serial: z.string(),
    operation_id: z.string(),
    outcome: z.string().meta({ description: 'Where the outcome appears (also the `Location` header): GET it until `operation.state` is no longer `running`.' }),
    detail: z.string(),
  })
  .meta({ id: 'VmOperationAccepted' });

export const snapshotListSchema = z.object({ serial: z.string(), limit: z.number().int(), snapshots: z.array(snapshotSchema) }).meta({ id: 'SnapshotList' });

export function toSnapshot(s: SnapshotRecord): z.infer<typeof snapshotSchema> {
  return { name: s.name, taken_at: s.takenAt, by: s.by, with_ram: s.withRam, ...(s.description ? { description: s.description } : {}) };
}

export function toOperation(o: OperationRecord): z.infer<typeof operationSchema> {
  return {
    id: o.id,
    what: o.what,
    state: o.state,
    ...(o.outcome ? { outcome: o.outcome } : {}),
    by: o.by,
    role: o.role,
    ...(o.note ? { note: o.note } : {}),
    started_at: o.startedAt,
    ...(o.endedAt ? { ended_at: o.endedAt } : {}),
  };
}

export function toOperationAnswer(r: OperationResult): z.infer<typeof operationAnswerSchema> {
  return {
    serial: r.serial,
    status: r.status,
    operation: toOperation(r.operation),
    ...(r.node ? { node: r.node } : {}),
    ...(r.power ? { power: r.power } : {}),
    snapshots: r.snapshots.map(toSnapshot),
  };
}
