import { createHash } from 'node:crypto';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/client';
import express, { Router } from 'express';
import type { ApiContext } from '../context';
import { badRequest, badRequestIssues, problem } from '../problems';
import { createDeviceRequestBody, deliveryHeaders } from '../schemas';
import { serialForDelivery } from '../serials';
import { policyIssues, startRequestWorkflow, toDeviceRequest, toWireField } from '../submission';
import { sendTemporalError } from '../temporalErrors';
import { isJson, wrongContentType } from '../contentType';
import { SIGNATURE_FORMAT, verifyWebhookSignature } from '../webhookSignature';
import { requestWorkflowId } from '../../contracts/workflowIds';

/** How many derived serials a delivery may walk past (taken by other requests) before giving up. */
const MAX_CANDIDATES = 8;

/**
 * `POST /api/hooks/device_requests`: a request portal's webhook. The signature (over the time, the delivery id and the
 * raw body: see webhookSignature) is checked before anything is parsed. The serial — and so the workflow id — is
 * derived from the delivery id, so a redelivery (the sender retrying after a lost answer) finds the workflow its
 * first delivery started and starts nothing new.
 */
export function webhookRoutes(ctx: ApiContext, secret: string | undefined): Router {
  const router = Router();
  router.post('/device_requests', express.raw({ type: () => true, limit: '256kb' }), async (req, res) => {
    if (!secret) return problem(res, 503, 'webhooks disabled', 'the webhook intake is off: set WEBHOOK_SECRET to turn it on');
    // Nothing about an unsigned body is looked at: only the two headers the signature covers.
    const signature = deliveryHeaders.shape['x-pveflow-signature'].safeParse(req.get('x-pveflow-signature'));
    if (!signature.success) return problem(res, 401, 'unauthenticated', `X-Pveflow-Signature must be ${SIGNATURE_FORMAT}`);
    const delivery = deliveryHeaders.pick({ 'x-pveflow-delivery': true }).safeParse({ 'x-pveflow-delivery': req.get('x-pveflow-delivery') });
    if (!delivery.success) return badRequest(res, delivery.error, 'headers');
    const deliveryId = delivery.data['x-pveflow-delivery'];
    const raw: Buffer = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const check = verifyWebhookSignature(secret, deliveryId, raw, signature.data);
    if (!check.ok) return problem(res, 401, 'unauthenticated', check.detail);
    if (!isJson(req)) return wrongContentType(res, req);

    let json: unknown;
    try {
      json = JSON.parse(raw.toString('utf8'));
    } catch {
      return void res.status(400).json({ error: 'invalid request', detail: 'the body is not valid JSON', issues: [{ field: '(body)', reason: 'not valid JSON' }] });
    }
    const body = createDeviceRequestBody.safeParse(json);
    if (!body.success) return badRequest(res, body.error);
    // A redelivery of a request taken while the policy held (its period has since moved into the past) still finds
    // it: the refusal stands only for a delivery that started nothing yet.
    const policy = policyIssues(ctx.policy, body.data);
    const bodyDigest = createHash('sha256').update(raw).digest('hex');

    for (let candidate = 0; candidate < MAX_CANDIDATES; candidate++) {
      const serial = serialForDelivery(deliveryId, candidate);
      if (!policy.length) {
        const built = toDeviceRequest(serial, body.data);
        if ('error' in built) return badRequest(res, built.error, 'body', toWireField);
        try {
          await startRequestWorkflow(ctx, built.request, { deliveryId, bodySha256: bodyDigest });
          return res.status(201).location(`/api/device_requests/${serial}`).json({ serial, duplicate: false });
        } catch (err) {
          if (!(err instanceof WorkflowExecutionAlreadyStartedError)) return sendTemporalError(res, err, serial);
        }
      }
      // Taken: by this very delivery (a redelivery), or by another request that happens to hold the same serial.
      let memo: Record<string, unknown> | undefined;
      try {
        memo = (await ctx.temporal(() => ctx.client.workflow.getHandle(requestWorkflowId(serial)).describe())).memo;
      } catch (err) {
        if (policy.length && err instanceof WorkflowNotFoundError) return badRequestIssues(res, policy);
        return sendTemporalError(res, err, serial);
      }
      if (memo?.deliveryId !== deliveryId) continue;
      if (memo.bodySha256 !== bodyDigest) {
        return problem(res, 409, 'conflict', `delivery ${deliveryId} was already received with a different body (request ${serial}); a new request needs a new delivery id`);
      }
      return res.status(200).location(`/api/device_requests/${serial}`).json({ serial, duplicate: true });
    }
    if (policy.length) return badRequestIssues(res, policy);
    return problem(res, 503, 'conflict', `no free serial for delivery ${deliveryId}; try again later`);
  });
  return router;
}
