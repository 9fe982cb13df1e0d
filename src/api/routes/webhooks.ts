import { createHash } from 'node:crypto';
import express, { Router } from 'express';
import type { ApiContext } from '../http/context';
import { badRequest, badRequestIssues, problem, quotaExceeded } from '../http/problems';
import { createDeviceRequestBody, deliveryHeaders } from '../../contracts/apiSchemas';
import { serialForDelivery } from '../reads/serials';
import { policyIssues, submissionQuotaExcess, toDeviceRequest, toWireField } from '../intake/submission';
import { intakeChoices, withResolvedDisk } from '../intake/choiceIntake';
import { startIdempotently } from '../intake/startIdempotently';
import { sendTemporalError } from '../http/temporalErrors';
import { isJson, wrongContentType } from '../http/contentType';
import { SIGNATURE_FORMAT, verifyWebhookSignature } from '../intake/webhookSignature';

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
    const resolved = await intakeChoices(ctx, res, body.data);
    if (!resolved) return;
    let overQuota;
    try {
      overQuota = policy.length ? undefined : await submissionQuotaExcess(ctx, withResolvedDisk(body.data, resolved));
    } catch (err) {
      return sendTemporalError(res, err);
    }

    const outcome = await startIdempotently(ctx, {
      serialAt: (candidate) => serialForDelivery(deliveryId, candidate),
      build: (serial) => toDeviceRequest(serial, body.data, resolved),
      memo: { deliveryId, bodySha256: bodyDigest },
      // Taken: by this very delivery (a redelivery), or by another request that happens to hold the same serial.
      recognise: (memo) => (memo?.deliveryId !== deliveryId ? 'not ours' : memo.bodySha256 === bodyDigest ? 'same request' : 'other body'),
      // Over quota, a redelivery still finds what its first delivery started; a new delivery starts nothing.
      mayStart: !policy.length && !overQuota,
    });
    if ('started' in outcome) return res.status(201).location(`/api/device_requests/${outcome.started}`).json({ serial: outcome.started, duplicate: false });
    if ('found' in outcome) return res.status(200).location(`/api/device_requests/${outcome.found}`).json({ serial: outcome.found, duplicate: true });
    if ('invalid' in outcome) return badRequest(res, outcome.invalid, 'body', toWireField);
    if ('failed' in outcome) return sendTemporalError(res, outcome.failed, outcome.serial);
    if ('otherBody' in outcome) {
      return problem(res, 409, 'conflict', `delivery ${deliveryId} was already received with a different body (request ${outcome.otherBody}); a new request needs a new delivery id`);
    }
    if (policy.length) return badRequestIssues(res, policy);
    if (overQuota) return quotaExceeded(res, overQuota);
    return problem(res, 503, 'conflict', `no free serial for delivery ${deliveryId}; try again later`);
  });
  return router;
}
