import { WorkflowIdReusePolicy } from '@temporalio/client';
import type { z } from 'zod';
import { deviceRequestSchema, type DeviceRequest } from '../../domain/deviceRequest';
import { periodRefusals } from '../../domain/requestPolicyRules';
import type { RequestPolicy } from '../../domain/requestPolicy';
import { requestStart } from '../../contracts/searchAttributes';
import type { vmRequest } from '../../workflows/vmRequest';
import type { ApiContext } from '../http/context';
import type { CreateDeviceRequestBody } from '../../contracts/apiSchemas';
import { fromWire, toWireField } from '../../contracts/requestWire';
import type { ResolvedChoices } from './choiceIntake';
import { requestWorkflowId } from '../../contracts/workflowIds';
import { sizeOf, times, type QuotaExcess } from '../../domain/quotas';
import { quotaExcess, type Leaving } from '../reads/quotaUse';
import { IMAGE_MEMO, QUOTA_SIZE_MEMO } from '../../contracts/memos';

/** The submission as the domain keeps it; the domain's rules between fields (the period's order) apply here. */
export function toDeviceRequest(serial: string, b: CreateDeviceRequestBody, resolved: ResolvedChoices = {}): { request: DeviceRequest } | { error: z.ZodError } {
  // The intake's resolution (the image's template, its minimum disk) completes what the body says.
  const parsed = deviceRequestSchema.safeParse({ serial, ...fromWire(b), ...resolved });
  return parsed.success ? { request: parsed.data } : { error: parsed.error };
}

export { toWireField };

/**
 * The quota `count` requests like this body would exceed for its org, on top of what the org's open requests hold
 * (undefined: they fit). The one check behind the submission, the class and the webhook; throws Temporal's errors.
 */
export function submissionQuotaExcess(ctx: ApiContext, b: CreateDeviceRequestBody, count = 1, leaving?: Leaving): Promise<QuotaExcess | undefined> {
  // The body's fields in the domain's words, as the request will be counted once it runs.
  const one = sizeOf(fromWire(b) as Parameters<typeof sizeOf>[0]);
  return quotaExcess(ctx, b.client, times(one, count), leaving);
}

/** An issue of a 400 answer; `rule` names the policy rule a valid-looking value breaks. */
export interface Issue {
  field: string;
  reason: string;
  rule?: string;
}

/**
 * The policy's rules for a new request (the same functions the workflow's own validators use), checked before
 * anything is started: a request the workflow would refuse later is refused now, with the field and the rule.
 */
export function policyIssues(policy: RequestPolicy, b: Pick<CreateDeviceRequestBody, 'period'>, now: number = Date.now()): Issue[] {
  return periodRefusals(policy, b.period, now).map((r) => ({ field: r.field, reason: r.reason, rule: r.rule }));
}

/**
 * Starts the request's workflow under the configured policy. The search attributes are set at the start, not only by
 * the workflow, so that the request is findable (and its org checkable) before a worker has touched it. A serial is
 * never reused, even after its request ended.
 */
export async function startRequestWorkflow(ctx: ApiContext, request: DeviceRequest, memo?: Record<string, string>): Promise<void> {
  await ctx.temporal(() =>
    ctx.client.workflow.start<typeof vmRequest>('vmRequest', {
      workflowId: requestWorkflowId(request.serial),
      taskQueue: ctx.taskQueue,
      ...requestStart(request, ctx.policy),
      workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
      // The size is read back by the quota count (quotaUse.ts) from the list alone, one listing for all requests.
      // The image it is built from: a delete of that image is refused while the request runs (catalogue/catalogueRoutes.ts).
      memo: { ...memo, [QUOTA_SIZE_MEMO]: sizeOf(request), [IMAGE_MEMO]: { ...(request.image ? { name: request.image } : {}), ...(request.templateVmid !== undefined ? { templateVmid: request.templateVmid } : {}) } },
      staticSummary: `${request.serial}: ${request.name} for ${request.org}`,
      staticDetails: `Requested by ${request.requester} for ${request.consultants.join(', ')}, ${request.period.start} → ${request.period.end}; ${request.cores} cores, ${request.memoryMiB} MiB.`,
    }),
  );
}
