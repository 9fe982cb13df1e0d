import { z } from 'zod';
import { classIdSchema, classSizeSchema, dateTimeSchema as dateTime, emailSchema as email, orgSchema, serialSchema, vmNameSchema } from '../domain/deviceRequest';
import { PERIOD_START_TOLERANCE_HOURS } from '../domain/requestPolicyRules';
import type { UpdateResult } from './messages';
import { requestStatuses, type RequestStatus } from './types';
import { quotaSchema } from '../domain/quotas';
import { wireShape } from './requestWire';
import { SIGNATURE_FORMAT, SIGNATURE_PATTERN, WEBHOOK_TOLERANCE_S } from './webhookSignatureFormat';

/**
 * The HTTP API's wire shapes: the bodies and query strings it parses (field names are the wire's, snake_case) and the
 * answers it documents. The OpenAPI document is generated from these same schemas. Every input is strict: an unknown
 * field is a mistake the caller should hear about, not a silently ignored setting.
 */

// The date-time, email and org rules are the domain's (domain/deviceRequest), examples included.
export { orgSchema };

/** The request's wire shape: the domain's fields under their wire names (requestWire), with the API's defaults and words. */
export const createDeviceRequestBody = z
  .strictObject({
    ...wireShape,
    requester: wireShape.requester.meta({ description: "Who asks for the VM. A requester key's own email (a requester submits as itself)." }),
    consultants: wireShape.consultants.meta({ description: 'Who gets VPN access to the VM.' }),
    period: wireShape.period.meta({
      description:
        `The lease. Policy rules, refused with 400 naming the field and the \`rule\`: end after start (end-before-start), end in the future ` +
        `(end-in-past), start at most ${PERIOD_START_TOLERANCE_HOURS} h ago (start-in-past), at most REQUEST_MAX_LEASE_DAYS (default 90) days long (max-lease). ` +
        'A start in the future makes the build wait for it. Both dates: ISO 8601 with an offset, in the years 2000 to 2100 as written (the pattern; else 400 naming the date).',
    }),
    cores: wireShape.cores.default(2).meta({ description: "At least the image's minimum: else 400 naming the field, rule below-image-minimum." }),
    memory_mib: wireShape.memory_mib.default(2048).meta({ description: "At least the image's minimum: else 400 naming the field, rule below-image-minimum." }),
    ssh_keys: wireShape.ssh_keys.default([]),
    image: wireShape.image.meta({
      description:
        'A catalogue image (GET /api/images). Refused with 400 naming the field and the `rule`: no such image (image-unknown); configured, but ' +
        'its template is not in the pool (image-template-missing); reserved to other organisations than the client (image-not-offered); retired (image-retired). cores, ' +
        "memory_mib or disk_gib below its minimum is refused naming that field (below-image-minimum). Absent: the default template, under its image's " +
        'rules when the catalogue has one.',
      example: 'debian-12',
    }),
    disk_gib: wireShape.disk_gib.meta({
      description:
        'The boot disk, grown to this size during the build (never shrunk). Refused with 400 naming the field and the `rule`: above REQUEST_MAX_DISK_GIB ' +
        "(choice-limit), below the image's minimum (below-image-minimum). Absent: the image's minimum.",
    }),
    network: wireShape.network.meta({
      description:
        "The VM's first NIC: a bridge, and a VLAN tag, from the allowed list (PVE_NETWORKS); off it, 400 naming network.bridge or network.vlan, " +
        'rule network-not-allowed; reserved to other organisations than the client, 400 naming network, rule network-not-offered. Absent: the default network.',
    }),
    cloud_init: wireShape.cloud_init.meta({
      description:
        "Added to the guest's first boot, merged under pveflow's own user-data (docs/images-and-choices.md): packages (installed after the guest agent), " +
        "runcmd (run after pveflow's commands), write_files (only to the allowed places, never under pveflow's: rules path-not-allowed, protected-path, path-not-normalised) and cloud_config, " +
        'a mapping of the cloud-config keys pveflow passes on (rules pveflow-key, cloud-config-key, cloud-config-value). Counts and size within ' +
        'CLOUD_INIT_MAX_PACKAGES, _RUNCMD, _WRITE_FILES and _BYTES: else 400 naming the field, rule choice-limit.',
    }),
  })
  .meta({
    id: 'DeviceRequestSubmission',
    description: "A request counts against its org's quotas (PVEFLOW_QUOTAS: VMs, cores, memory_mib, disk_gib) from submission until it ends: over one, 409 " + '`quota exceeded` naming the quota, its use and the limit.',
  });

export type CreateDeviceRequestBody = z.infer<typeof createDeviceRequestBody>;

/** A class: `count` identical VMs (a lab, an event), each its own request named `<name>-01`, `<name>-02`, ... */
export const createClassBody = z
  .strictObject({
    ...createDeviceRequestBody.shape,
    name: vmNameSchema.max(37, 'at most 37 characters: each VM gets a -NN suffix').meta({ example: 'lab' }),
    count: classSizeSchema,
  })
  .meta({ id: 'ClassSubmission' });

export type CreateClassBody = z.infer<typeof createClassBody>;

export const classAnswerSchema = z
  .object({
    class: classIdSchema,
    requests: z.array(
      z.object({
        serial: serialSchema,
        name: z.string().optional(),
        status: z.string().meta({ description: 'As the action left the request (or its status, when it refused).' }),
        build: z.object({ attempt: z.number().int(), state: z.string() }).optional(),
        builds_at: z.string().optional(),
        refused: z.string().optional(),
      }),
    ),
  })
  .meta({ id: 'ClassAnswer' });

export const classIdParam = z.strictObject({ id: classIdSchema.meta({ example: 'CL-4H7QX' }) });

const note = z.string().max(2000).optional().meta({ description: 'Recorded on the request timeline.' });

/** approve, cancel, rebuild, complete. Who acts is the API key's holder, never a body field. */
export const actionBody = z.strictObject({ note }).meta({ id: 'Action' });

export const rejectBody = z.strictObject({ reason: z.string().min(1, 'say why the request is rejected').max(2000) }).meta({ id: 'Rejection' });

export const extendBody = z.strictObject({ new_end: dateTime('2030-06-24T18:00:00Z').meta({ description: 'The new end of the period, in the years 2000 to 2100 as written.' }), note }).meta({ id: 'Extension' });

export const serialParam = z.strictObject({ serial: serialSchema.meta({ example: 'VM-7K2Q9' }) });

// Fails to compile when the workflows add a status this list lacks.
const everyStatusListed: Exclude<RequestStatus, (typeof requestStatuses)[number]> extends never ? true : never = true;
void everyStatusListed;

export const requestStatusSchema = z.enum(requestStatuses);

/** Filters of the list. Values reach a visibility query: their alphabets leave no room for quotes. */
export const listQuery = z
  .strictObject({
    org: orgSchema.optional(),
    status: requestStatusSchema.optional(),
    consultant: email().optional().meta({ description: 'Requests giving this consultant access.' }),
    class: classIdSchema.optional().meta({ description: 'The requests of one class (see POST /api/classes).' }),
    from: dateTime('2030-06-01T00:00:00Z').optional().meta({ description: 'Requests whose period ends at or after this (a date-time in the years 2000 to 2100 as written).' }),
    to: dateTime('2030-06-30T23:59:59Z')
      .optional()
      .meta({ description: 'Requests whose period starts at or before this (a date-time in the years 2000 to 2100 as written); not before `from` (400, rule to-before-from).' }),
    page_size: z.coerce.number().int().min(1).max(100).default(25),
    page_token: z
      .string()
      .max(8192)
      .regex(/^[A-Za-z0-9_-]+$/, 'must be a next_page_token from an earlier answer')
      .optional()
      .meta({ description: 'A next_page_token exactly as an earlier answer gave it; any other value is 400.' }),
  })
  .refine((q) => !q.from || !q.to || Date.parse(q.from) <= Date.parse(q.to), { path: ['to'], message: 'must not be before from', params: { rule: 'to-before-from' } });

export type ListQuery = z.infer<typeof listQuery>;

/** `Idempotency-Key` on a submission (src/api/intake/idempotency.ts says what the API does with it). */
export const IDEMPOTENCY_HEADER = 'idempotency-key';

export const idempotencyHeaders = z.object({
  [IDEMPOTENCY_HEADER]: z
    .string()
    .regex(/^[A-Za-z0-9_.:-]{8,128}$/, 'must be 8-128 characters of letters, digits, _ . : -')
    .optional()
    .meta({ description: 'Your unique id for this submission (e.g. a UUID). A retry with the same key answers 200 with the request the first try created; the same key with another body is 409.' }),
});

export const deliveryHeaders = z.object({
  'x-pveflow-delivery': z
    .string()
    .regex(/^[A-Za-z0-9._:-]{8,128}$/, '8-128 characters of letters, digits, . _ : -')
    .meta({ description: 'Unique per delivery; a redelivery repeats it and starts nothing new.' }),
  'x-pveflow-signature': z
    .string()
    .regex(SIGNATURE_PATTERN, `must be ${SIGNATURE_FORMAT}`)
    .meta({ description: `${SIGNATURE_FORMAT}; t within ${WEBHOOK_TOLERANCE_S} s of the server's clock.`, example: `t=1764000000,v1=${'0'.repeat(64)}` }),
});

// ── Answers (documented; built by the routes) ────────────────────────────────────────────────────────────────────

const issueSchema = z
  .object({
    field: z.string().meta({ description: 'The field at fault: a body path (period.end), a header (content-type), a query or path parameter, or (body).' }),
    reason: z.string(),
    rule: z
      .string()
      .optional()
      .meta({
        description:
          'The rule a well-formed value breaks, as this document states it where it describes the field: a request policy rule (max-lease, ' +
          'start-in-past, ...), one between fields (to-before-from), or an image or choice rule (image-unknown, choice-limit, network-not-allowed, ...).',
      }),
  })
  .meta({ id: 'Issue' });

/** Every 4xx and 5xx answer: `error` says what kind, `detail` what to do; a 400 lists the `issues`. */
export const problemSchema = z
  .object({
    error: z.string(),
    detail: z.string().optional(),
    issues: z.array(issueSchema).optional(),
    serial: serialSchema.optional().meta({ description: 'The request a failed start may have created (503/504 of a submission).' }),
    outcome: z.string().optional().meta({ description: 'Where to read the outcome of an action whose answer did not come back (503/504 "outcome unknown"): the request, or the day-2 operation.' }),
    quota: z
      .object({
        org: z.string(),
        quota: z.enum(['vms', 'cores', 'memory_mib', 'disk_gib']),
        use: z.number().int().meta({ description: "What the org's open requests hold now." }),
        asked: z.number().int().meta({ description: 'What the submission or approval would add.' }),
        limit: z.number().int(),
      })
      .optional()
      .meta({ description: 'A 409 "quota exceeded": the quota, its current use, what was asked and the limit.' }),
  })
  .meta({ id: 'Problem' });

export const validationProblemSchema = problemSchema.extend({ error: z.literal('invalid request'), issues: z.array(issueSchema).min(1) }).meta({ id: 'ValidationProblem' });

export const submittedSchema = z.object({ serial: serialSchema, status: requestStatusSchema }).meta({ id: 'Submitted' });

export const deliveryAnswerSchema = z.object({ serial: serialSchema, duplicate: z.boolean().meta({ description: 'true: an earlier delivery already started this request' }) }).meta({ id: 'DeliveryAccepted' });

export const updateResultSchema = z
  .object({
    serial: serialSchema,
    status: requestStatusSchema.meta({ description: 'The status once the action took effect (e.g. Cancelling while the build undoes its work).' }),
    build: z
      .object({ attempt: z.number().int(), state: z.enum(['queued', 'started', 'building', 'completed', 'failed', 'cancelling', 'cancelled']) })
      .optional()
      .meta({ description: 'The build the action queued, started or is cancelling (a rebuild: the new one); else the latest.' }),
    builds_at: z.string().optional().meta({ description: 'Approved before the period starts: when the build starts.' }),
    period_end: z.string().optional().meta({ description: 'An extension: the new end of the lease.' }),
  })
  .meta({ id: 'UpdateResult' });

export type UpdateAnswer = z.infer<typeof updateResultSchema>;

/** The workflow's answer in the wire's words. */
export function toUpdateAnswer(r: UpdateResult): UpdateAnswer {
  return {
    serial: r.serial,
    status: r.status,
    ...(r.build ? { build: r.build } : {}),
    ...(r.buildsAt ? { builds_at: r.buildsAt } : {}),
    ...(r.periodEnd ? { period_end: r.periodEnd } : {}),
  };
}

export const requestSummarySchema = z
  .object({
    serial: serialSchema,
    name: z.string().optional().meta({ description: "The VM's name as requested (a class's VMs: <name>-01, <name>-02, ...)" }),
    org: z.string(),
    status: requestStatusSchema,
    build_status: z.string().optional().meta({ description: 'The latest build: building, cancelling, completed, failed or cancelled; absent before the first' }),
    vm_id: z.number().int().optional().meta({ description: 'While the request has a VM; absent once it is destroyed or gone' }),
    node: z.string().optional(),
    class: z.string().optional().meta({ description: 'The class (lab, event) the request belongs to' }),
    consultants: z.array(z.string()),
    period: z.object({ start: z.string().optional(), end: z.string().optional() }),
    submitted_at: z.string(),
    closed_at: z.string().optional(),
    open: z.boolean().meta({ description: 'false once the request workflow has ended' }),
  })
  .meta({ id: 'DeviceRequestSummary' });

export type RequestSummary = z.infer<typeof requestSummarySchema>;

export const classMembersSchema = z.object({ class: classIdSchema, requests: z.array(requestSummarySchema) }).meta({ id: 'ClassMembers' });

export const requestPageSchema = z.object({ items: z.array(requestSummarySchema), next_page_token: z.string().optional() }).meta({ id: 'DeviceRequestPage' });

const buildSchema = z.object({
  workflowId: z.string(),
  attempt: z.number().int(),
  state: z.enum(['queued', 'started', 'building', 'completed', 'failed', 'cancelling', 'cancelled']),
  stage: z.string(),
  progress: z.number(),
  log: z.array(z.object({ at: z.string(), stage: z.string(), message: z.string() })),
  error: z.string().optional(),
  leftovers: z.array(z.string()),
  startedAt: z.string().optional(),
  endedAt: z.string().optional(),
  durationSeconds: z.number().optional().meta({ description: 'The build time, once it ended.' }),
  vmid: z.number().int().optional().meta({ description: 'The VM this attempt made.' }),
  node: z.string().optional().meta({ description: 'The node this attempt placed it on.' }),
});

export const requestRecordSchema = z
  .object({
    serial: serialSchema,
    request: z.looseObject({ serial: z.string(), name: z.string(), org: z.string(), requester: z.string(), consultants: z.array(z.string()) }),
    status: requestStatusSchema,
    build: buildSchema.optional(),
    previousBuilds: z.array(buildSchema).optional().meta({ description: 'The build attempts before `build`, oldest first (the last few), each with its own log.' }),
    device: z.object({
      vmid: z.number().int().optional(),
      node: z.string().optional(),
      hostname: z.string(),
      ip: z.string().optional(),
      vpnIp: z.string().optional(),
      vpnHostname: z.string().optional(),
      state: z.string().optional(),
    }),
    timeline: z
      .array(z.object({ at: z.string(), event: z.string(), by: z.string().optional(), summarises: z.number().int().optional() }))
      .meta({ description: 'The first entry and the latest (bounded); `summarises` marks the entry that stands for the ones dropped between.' }),
    leftovers: z.array(z.string()),
    drift: z.looseObject({ kind: z.string(), at: z.string() }).optional(),
    operations: z
      .array(z.looseObject({ id: z.string(), what: z.string(), state: z.string(), by: z.string(), startedAt: z.string() }))
      .optional()
      .meta({ description: 'Day-2 operations on the VM, latest last.' }),
    snapshots: z.array(z.looseObject({ name: z.string(), takenAt: z.string(), by: z.string(), withRam: z.boolean() })).optional(),
  })
  .meta({ id: 'DeviceRequestRecord', description: 'The whole record of a request, never a secret.' });

export const templateListSchema = z
  .object({
    synced_at: z.string().meta({ description: 'When the cluster sync that saw these templates ran.' }),
    templates: z.array(
      z.object({
        vmid: z.number().int(),
        name: z.string(),
        node: z.string(),
        cores: z.number().int().optional(),
        memoryMiB: z.number().int().optional(),
        diskGiB: z.number().optional(),
      }),
    ),
  })
  .meta({ id: 'TemplateList' });

/** An image's templates per node on the wire: the list and an image's own answer show the same. */
export const imageTemplatesPerNodeSchema = z
  .array(z.object({ node: z.string(), vmid: z.number().int() }))
  .optional()
  .meta({
    description:
      "Its template on each node, when it has one per node (imported onto storage local to each node), as the newest cluster sync found them or an import made them since: a request is placed on one of these nodes and cloned from that node's template.",
  });

export const imageListSchema = z
  .object({
    synced_at: z.string().meta({ description: "When the cluster sync that saw the images' templates ran." }),
    images: z.array(
      z.object({
        name: z.string().meta({ description: 'What a submission names in `image`.' }),
        os: z.string().optional(),
        description: z.string().optional(),
        template_vmid: z.number().int(),
        template_name: z.string(),
        node: z.string(),
        templates: imageTemplatesPerNodeSchema,
        min_cores: z.number().int(),
        min_memory_mib: z.number().int(),
        min_disk_gib: z.number().int().meta({ description: "The configured minimum, never below the template's own disk." }),
        orgs: z.array(z.string()).optional().meta({ description: 'Operators only: the organisations the image is reserved to (absent: every one).' }),
        default: z.boolean().meta({ description: 'The image of the default template: what a submission without `image` is built from.' }),
      }),
    ),
  })
  .meta({ id: 'ImageList' });

export type ImageList = z.infer<typeof imageListSchema>;
const usageSchema = z.object({ vms: z.number().int(), cores: z.number().int(), memory_mib: z.number().int(), disk_gib: z.number().int() });

export const sessionSchema = z
  .object({
    id: z.string(),
    role: z.enum(['requester', 'admin', 'operator']),
    org: z.string().optional(),
    email: z.string().optional(),
    quotas: z
      .array(
        z.object({
          org: z.string(),
          limits: quotaSchema.meta({ description: 'The limits that apply to the org (its own, or the `*` entry); a limit left out is none.' }),
          use: usageSchema.meta({ description: "What the org's open requests hold now (every running request but Rejected, Expired, Completed and Cancelled ones)." }),
        }),
      )
      .optional()
      .meta({ description: "Per org the key sees that has a quota (its own; an operator's: every org PVEFLOW_QUOTAS names): limits and use. Absent when none has, or when Temporal could not be asked." }),
    csrf_token: z.string().optional().meta({ description: 'Only for a browser signed in through the identity provider (session cookie): the value of the x-pveflow-csrf header every change it makes must carry.' }),
  })
  .meta({ id: 'Session' });

export type SessionAnswer = z.infer<typeof sessionSchema>;

export const healthSchema = z.object({ status: z.string(), version: z.string().optional().meta({ description: 'The pveflow release this process runs (semver); on /healthz.' }) }).meta({ id: 'Health' });
