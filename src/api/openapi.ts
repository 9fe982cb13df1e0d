import { OpenAPIRegistry, OpenApiGeneratorV3, type RouteConfig } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import type { Action } from './auth/permissions';
import type { RequestChoiceSettings } from './intake/requestChoices';
import { SIGNATURE_FORMAT, WEBHOOK_TOLERANCE_S } from '../contracts/webhookSignatureFormat';
import { rolesFor } from './auth/permissions';
import { registerVmOperationPaths } from './day2/vmOperationsOpenApi';
import {
  idempotencyHeaders,
  actionBody,
  classAnswerSchema,
  classIdParam,
  classMembersSchema,
  createClassBody,
  createDeviceRequestBody,
  deliveryAnswerSchema,
  deliveryHeaders,
  extendBody,
  healthSchema,
  listQuery,
  problemSchema,
  rejectBody,
  requestPageSchema,
  requestRecordSchema,
  serialParam,
  sessionSchema,
  submittedSchema,
  templateListSchema,
  imageListSchema,
  updateResultSchema,
  validationProblemSchema,
} from '../contracts/apiSchemas';

/**
 * The OpenAPI 3 document, generated from the very zod schemas the routes parse with: what it promises is what the
 * API checks. Built once at start-up, with the deployment's choices (the allowed networks, the configured images)
 * stated where a schema can state them.
 */
export function buildOpenApiDocument(choices?: Pick<RequestChoiceSettings, 'networks' | 'images'>): ReturnType<OpenApiGeneratorV3['generateDocument']> {
  const registry = new OpenAPIRegistry();
  const bearer = registry.registerComponent('securitySchemes', 'apiKey', {
    type: 'http',
    scheme: 'bearer',
    description: 'An API key: `Authorization: Bearer <key>`. Roles: requester (own org), admin (own org), operator (all orgs).',
  });
  const secured = [{ [bearer.name]: [] }];

  const json = <T extends z.ZodType>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });
  const retryAfter = { 'Retry-After': { description: 'Seconds to wait before trying again.', schema: { type: 'integer' as const, minimum: 1 } } };
  const problems = {
    401: json(problemSchema, 'No API key, or an unknown one.'),
    403: json(problemSchema, "The key's role or org may not do this."),
  };
  const invalid = json(validationProblemSchema, 'Bad input: each field and the reason (and the policy rule, if one is broken). Nothing was started or changed.');
  const invalidBody = json(
    validationProblemSchema,
    'Bad input: each field and the reason (a policy rule names itself in `rule`); also a body that is not JSON or not sent as Content-Type: application/json. Nothing was started or changed.',
  );
  const notFound = json(problemSchema, 'No such request, or one of another org.');
  const temporal = { 503: json(problemSchema, 'Temporal did not answer; try again.'), 504: json(problemSchema, 'Temporal did not answer in time (is a worker polling?).') };
  const tooLarge = json(problemSchema, 'The body is larger than 256 kB.');
  const tooMany = { ...json(problemSchema, 'Past the bound for this key (writes per minute, or open log streams) or for the API: nothing was done; see Retry-After.'), headers: retryAfter };
  const internal = json(problemSchema, 'An unexpected error (logged on the server); nothing secret is in the answer.');
  const who = (action: Action) => `Roles: ${rolesFor[action].join(', ')}.`;

  // Every operation can fail unexpectedly: 500 is documented on all of them, with the same Problem body.
  const op = (config: RouteConfig) => registry.registerPath({ ...config, responses: { ...config.responses, 500: internal } });

  op({
    method: 'post',
    path: '/api/device_requests',
    operationId: 'submitDeviceRequest',
    summary: 'Submit a VM request',
    description:
      `Starts the request's workflow (Pending). A requester or admin submits only for their own org. With an Idempotency-Key, a retry ` +
      `answers 200 (header Idempotent-Replayed: true) with the request the first try created and starts nothing. ${who('submit')}`,
    security: secured,
    request: { headers: idempotencyHeaders, body: { required: true, content: { 'application/json': { schema: createDeviceRequestBody } } } },
    responses: {
      201: json(submittedSchema, 'Submitted.'),
      200: json(submittedSchema, 'A retry with the same Idempotency-Key: the request the first try created, as it stands.'),
      400: invalidBody,
      ...problems,
      409: json(
        problemSchema,
        "The Idempotency-Key was already used with a different body; or `quota exceeded`: the org's open requests and this one would pass a quota (`quota` names it, its use and the limit). Nothing was started.",
      ),
      413: tooLarge,
      429: tooMany,
      503: {
        ...json(
          problemSchema,
          'Too many submissions being started at once (Retry-After; nothing was created), an `image` named before the first cluster sync (nothing was created), or Temporal unreachable (the request may exist: `serial`).',
        ),
        headers: retryAfter,
      },
      504: json(problemSchema, 'Temporal did not confirm the start in time: the request may exist (its serial is in the answer); retry with the same Idempotency-Key.'),
    },
  });
  op({
    method: 'get',
    path: '/api/device_requests',
    operationId: 'listDeviceRequests',
    summary: 'List and filter requests',
    description: `From Temporal visibility. Period filters select requests whose period overlaps [from, to]. A requester or admin sees only their org. ${who('list')}`,
    security: secured,
    request: { query: listQuery },
    responses: { 200: json(requestPageSchema, 'One page; pass next_page_token as page_token for the next.'), 400: invalid, ...problems, ...temporal },
  });
  op({
    method: 'get',
    path: '/api/device_requests/{serial}',
    operationId: 'getDeviceRequest',
    summary: "A request's whole record",
    description: `Status, build (live stage, progress, log), device settings, timeline. Never a secret. ${who('read')}`,
    security: secured,
    request: { params: serialParam },
    responses: { 200: json(requestRecordSchema, 'The record.'), 400: invalid, 401: problems[401], 404: notFound, ...temporal },
  });
  op({
    method: 'get',
    path: '/api/device_requests/{serial}/logs',
    operationId: 'streamDeviceRequestLogs',
    summary: "A request's build log as Server-Sent Events",
    description:
      'Events: `status` {status, build?}, `log` {attempt, at, stage, message}, `timeline` {at, event, by?}, `end` {status, build_state?} ' +
      '(sent when the build is done or the request has ended, then the stream closes), `error` {message}. Heartbeat comments keep it open; ' +
      `Last-Event-ID resumes. A finished request replays its history. In order: a \`status\` comes after the lines that led to it. ${who('logs')}`,
    security: secured,
    request: { params: serialParam },
    responses: {
      200: {
        description: 'An event stream; each event as below (`data` is JSON).',
        content: {
          'text/event-stream': {
            schema: z
              .object({
                event: z.enum(['status', 'log', 'timeline', 'end', 'error']),
                data: z.string().meta({ description: 'JSON: status {status, build?} · log {attempt, at, stage, message} · timeline {at, event, by?} · end {status, build_state?} · error {message}' }),
                id: z
                  .string()
                  .regex(/^\d{1,6}\.\d{1,9}\.\d{1,9}$/)
                  .optional()
                  .meta({ description: 'Send back as Last-Event-ID to resume.' }),
              })
              .meta({ id: 'LogStreamEvent' }),
          },
        },
      },
      400: invalid,
      401: problems[401],
      404: notFound,
      429: tooMany,
      ...temporal,
    },
  });

  op({
    method: 'get',
    path: '/api/device_requests/{serial}/credentials',
    operationId: 'revealDeviceRequestCredentials',
    summary: "The guest's generated logins, once, to one of the request's consultants",
    description:
      "The key's email must be one of the request's consultants. The request hands the logins over and forgets them in " +
      'the same step; its timeline records who took them; a second call is refused (409). Not cached (Cache-Control: no-store). ' +
      who('credentials'),
    security: secured,
    request: { params: serialParam },
    responses: {
      200: json(
        z.object({
          serial: z.string(),
          username: z.string(),
          password: z.string(),
          root_password: z.string(),
          revealed_to: z.string().meta({ description: 'Who took them (the key holder): the request no longer holds them.' }),
          revealed_at: z.string(),
        }),
        'The logins, and the handover they were: from now on nobody can ask again.',
      ),
      400: invalid,
      ...problems,
      404: notFound,
      409: json(problemSchema, 'Not a consultant of the request, already revealed, or no VM yet.'),
      ...temporal,
    },
  });

  const actions: Array<[Action, string, z.ZodType, string]> = [
    ['approve', 'Approve a pending request', actionBody, 'Pending → Approved; built at its period start.'],
    ['reject', 'Reject a pending request', rejectBody, 'Pending → Rejected, with the reason on the timeline.'],
    ['cancel', 'Cancel the build', actionBody, 'Cancels the running (or not yet started) build; its undos remove what it made.'],
    ['rebuild', 'Build again after a failure', actionBody, "Failed or Cancelled → a new build attempt, checked against the org's quotas as an approval is; before the period's start it waits for it (`builds_at`)."],
    ['extend', 'Move the end of the lease', extendBody, 'Validated: after now and the start, within the maximum lease.'],
    ['complete', 'End the request now', actionBody, 'Cleans up the VM and its VPN access, then Completed.'],
  ];
  for (const [action, summary, body, description] of actions) {
    op({
      method: 'post',
      path: `/api/device_requests/{serial}/${action}`,
      operationId: `${action}DeviceRequest`,
      summary,
      description: `${description} A Workflow Update: the answer is the workflow's decision. Recorded as done by the key's holder. ${who(action)}`,
      security: secured,
      // reject needs its reason and extend its new end; the others may be sent without a body.
      request: { params: serialParam, body: { required: action === 'reject' || action === 'extend', content: { 'application/json': { schema: body } } } },
      responses: {
        200: json(updateResultSchema, 'Done; the request as the action left it, once it took effect.'),
        400: invalidBody,
        ...problems,
        404: notFound,
        409: json(
          problemSchema,
          action === 'approve' || action === 'rebuild'
            ? "The request's state does not allow this (the workflow's own words); or `quota exceeded`: the org's open requests pass a quota now (`quota` names it, its use and the limit). Nothing changed."
            : "The request's state does not allow this (the workflow's own words).",
        ),
        413: tooLarge,
        429: tooMany,
        ...temporal,
      },
    });
  }

  registerVmOperationPaths({ op, secured, problems, invalidBody, notFound, tooLarge, tooMany, temporal });

  op({
    method: 'get',
    path: '/api/session',
    operationId: 'getSession',
    summary: 'Who the key belongs to',
    description:
      "The id, role, org (requester, admin) and email of the presented key: what a client needs to offer only what its holder may do; and per org it sees, the quota's limits and what the org's open requests hold. Never the key.",
    security: secured,
    responses: {
      200: json(sessionSchema, 'The key holder, and the quota use of the orgs it sees.'),
      401: problems[401],
    },
  });
  op({
    method: 'get',
    path: '/api/templates',
    operationId: 'listTemplates',
    summary: 'Templates in the pool',
    description: `As the newest completed cluster sync saw them: an operator sees the pool; a requester or admin the templates behind the images offered to their org (GET /api/images). ${who('templates')}`,
    security: secured,
    responses: { 200: json(templateListSchema, 'The templates.'), 401: problems[401], 503: json(problemSchema, 'No cluster sync has completed yet, or Temporal unreachable.'), 504: temporal[504] },
  });
  op({
    method: 'get',
    path: '/api/images',
    operationId: 'listImages',
    summary: 'Images a submission may name',
    description: `The pool's templates as the newest completed cluster sync saw them, named and refined by the configuration (PVEFLOW_IMAGES). A requester or admin sees the images offered to their org. ${who('images')}`,
    security: secured,
    responses: { 200: json(imageListSchema, 'The images.'), 401: problems[401], 503: json(problemSchema, 'No cluster sync has completed yet, or Temporal unreachable.'), 504: temporal[504] },
  });
  op({
    method: 'post',
    path: '/api/hooks/device_requests',
    operationId: 'receiveDeviceRequestWebhook',
    summary: 'Webhook intake for VM requests',
    description:
      `Signed instead of keyed: X-Pveflow-Signature: ${SIGNATURE_FORMAT}, with t within ${WEBHOOK_TOLERANCE_S} s of the server's clock ` +
      '(a capture is worthless after that, and under another delivery id at once). The serial is derived from X-Pveflow-Delivery: a ' +
      'redelivery answers 200 with the same serial and starts nothing. The request policy applies as for a submission.',
    request: { headers: deliveryHeaders, body: { required: true, content: { 'application/json': { schema: createDeviceRequestBody } } } },
    responses: {
      201: json(deliveryAnswerSchema, 'A new request was started.'),
      200: json(deliveryAnswerSchema, 'A redelivery: the request its first delivery started.'),
      400: invalidBody,
      401: json(problemSchema, `Missing or wrong signature, or signed more than ${WEBHOOK_TOLERANCE_S} s away from the server's clock.`),
      409: json(problemSchema, 'The delivery id was already used with a different body; or `quota exceeded` (`quota` names it, its use and the limit): nothing was started.'),
      413: tooLarge,
      503: json(problemSchema, 'The intake is off (no WEBHOOK_SECRET), an `image` named before the first cluster sync (nothing was created), or Temporal unreachable.'),
      504: temporal[504],
    },
  });
  op({
    method: 'post',
    path: '/api/classes',
    operationId: 'submitClass',
    summary: 'Submit a class: N identical VMs (a lab, an event)',
    description:
      `Starts one request per VM (\`<name>-01\` ... \`<name>-NN\`), all tagged with the class id (search attribute ClassId). ` +
      `With an Idempotency-Key a retry starts only what the first try did not and answers 200 when nothing was missing. ${who('submit')}`,
    security: secured,
    request: { headers: idempotencyHeaders, body: { required: true, content: { 'application/json': { schema: createClassBody } } } },
    responses: {
      201: json(classAnswerSchema, 'The class and its requests.'),
      200: json(classAnswerSchema, 'A retry: nothing new.'),
      400: invalidBody,
      ...problems,
      409: json(problemSchema, '`quota exceeded`: the whole class would pass a quota of the org (`quota` names it, its use, what the class asks and the limit). No member was started.'),
      413: tooLarge,
      429: tooMany,
      503: json(
        problemSchema,
        'Temporal unreachable, or no free serial: members made so far stay (a retry with the same Idempotency-Key finds them; `serial` names the one that may exist); or an `image` named before the first cluster sync (nothing was created).',
      ),
      504: json(problemSchema, 'Temporal did not confirm a start in time: `serial` may exist; retry with the same Idempotency-Key.'),
    },
  });
  op({
    method: 'get',
    path: '/api/classes/{id}',
    operationId: 'getClass',
    summary: "A class's requests and their statuses",
    security: secured,
    request: { params: classIdParam },
    responses: { 200: json(classMembersSchema, 'The requests of the class.'), 400: invalid, 401: problems[401], 404: json(problemSchema, 'No such class, or none of its requests in your org.'), ...temporal },
  });
  for (const action of ['approve', 'reject', 'cancel', 'complete'] as const) {
    op({
      method: 'post',
      path: `/api/classes/{id}/${action}`,
      operationId: `${action}Class`,
      summary: `${action[0]!.toUpperCase()}${action.slice(1)} every open request of a class`,
      description: `Each request answers for itself (its status, or why it refused); 409 when all refused.${action === 'approve' ? " Approval checks the org's quotas again: over one, every pending member is refused with the quota, its use and the limit in `refused`." : ''} ${who(action)}`,
      security: secured,
      request: { params: classIdParam, body: { required: action === 'reject', content: { 'application/json': { schema: action === 'reject' ? rejectBody : actionBody } } } },
      responses: {
        200: json(classAnswerSchema, 'What each request did.'),
        409: json(classAnswerSchema, 'Every request refused.'),
        400: invalidBody,
        ...problems,
        404: json(problemSchema, 'No such class, or none of its requests in your org.'),
        413: tooLarge,
        429: tooMany,
        ...temporal,
      },
    });
  }
  op({ method: 'get', path: '/healthz', operationId: 'health', summary: 'Liveness', responses: { 200: json(healthSchema, 'The process serves.') } });
  op({
    method: 'get',
    path: '/readyz',
    operationId: 'ready',
    summary: 'Readiness',
    responses: { 200: json(healthSchema, 'Temporal is reachable.'), 503: json(problemSchema, 'Temporal is not reachable.') },
  });
  op({ method: 'get', path: '/api/openapi.json', operationId: 'openapi', summary: 'This document', responses: { 200: { description: 'OpenAPI 3 document.' } } });
  op({ method: 'get', path: '/api/docs', operationId: 'docs', summary: 'A page listing the operations', responses: { 200: { description: 'HTML.' } } });

  const document = new OpenApiGeneratorV3(registry.definitions).generateDocument({
    openapi: '3.0.3',
    info: {
      title: 'pveflow API',
      version: '1.0.0',
      description:
        'Durable VM requests for Proxmox VE on Temporal: submit, approve, follow the build, extend, complete. Every 4xx and 5xx answer is a ' +
        'Problem (`error`, `detail`, and `issues` on a 400). A method a listed path does not serve is 405 with `Allow`; an unlisted path is 404. ' +
        'Bodies are JSON (Content-Type: application/json), at most 256 kB.',
    },
  });
  if (choices) stateDeploymentChoices(document, choices);
  return document;
}

type Document = ReturnType<OpenApiGeneratorV3['generateDocument']>;
type JsonSchema = Record<string, unknown> & { properties?: Record<string, JsonSchema> };

/**
 * The deployment's choices in every submission's schema: the network as one of the allowed entries (a bridge
 * untagged, or with a VLAN in its range), the image as one of the configured names. A client's validator then knows
 * what the intake allows, and a request the document calls valid is not refused for them (rule network-not-allowed,
 * image-unknown). Not stated: which org an image is reserved to, and whether its template is in the pool (the
 * catalogue, as of the last sync): the image's description names those rules. Without configured images every
 * template of the pool is one, and the pattern stays.
 */
function stateDeploymentChoices(document: Document, choices: Pick<RequestChoiceSettings, 'networks' | 'images'>): void {
  for (const schema of Object.values(document.components?.schemas ?? {}) as JsonSchema[]) {
    const properties = schema.properties;
    if (!properties?.network || !properties.image) continue;
    const { type: _type, properties: _properties, required: _required, additionalProperties: _additional, ...network } = properties.network;
    properties.network = {
      ...network,
      anyOf: choices.networks.map((n) => ({
        type: 'object',
        properties: { bridge: { type: 'string', enum: [n.bridge] }, ...(n.vlans ? { vlan: { type: 'integer', minimum: n.vlans.min, maximum: n.vlans.max } } : {}) },
        required: n.vlans ? ['bridge', 'vlan'] : ['bridge'],
        additionalProperties: false,
      })),
    };
    if (choices.images) properties.image = { ...properties.image, enum: choices.images.map((i) => i.name) };
  }
}
