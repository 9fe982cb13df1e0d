import { createHmac, timingSafeEqual } from 'node:crypto';

import { SIGNATURE_FORMAT, SIGNATURE_PATTERN, WEBHOOK_TOLERANCE_S } from '../../contracts/webhookSignatureFormat';

export { SIGNATURE_FORMAT, SIGNATURE_PATTERN, WEBHOOK_TOLERANCE_S } from '../../contracts/webhookSignatureFormat';

export function webhookDigest(secret: string, timestamp: number, deliveryId: string, rawBody: Buffer | string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${deliveryId}.`).update(rawBody).digest('hex');
}

/** The header a sender sets: `t=<unix>,v1=<hex>`. `at` is the sending time in ms (default: now). */
export function signWebhook(secret: string, deliveryId: string, rawBody: Buffer | string, at: number = Date.now()): string {
  const t = Math.floor(at / 1000);
  return `t=${t},v1=${webhookDigest(secret, t, deliveryId, rawBody)}`;
}

export type SignatureCheck = { ok: true } | { ok: false; reason: 'malformed' | 'mismatch' | 'stale'; detail: string };

/** Constant-time check of the header against the delivery id and the raw body exactly as received, then the window. */
export function verifyWebhookSignature(secret: string, deliveryId: string, rawBody: Buffer, header: string, now: number = Date.now()): SignatureCheck {
  if (!SIGNATURE_PATTERN.test(header)) return { ok: false, reason: 'malformed', detail: `X-Pveflow-Signature must be ${SIGNATURE_FORMAT}` };
  const parts = header.split(',').map((p) => p.split('=', 2) as [string, string]);
  const t = Number(parts.find(([k]) => k === 't')![1]);
  const expected = Buffer.from(webhookDigest(secret, t, deliveryId, rawBody), 'hex');
  // Every v1 is compared (no early exit), so the timing says nothing about which one matched.
  let matched = false;
  for (const [k, v] of parts) {
    if (k !== 'v1') continue;
    const presented = Buffer.from(v, 'hex');
    if (presented.length === expected.length && timingSafeEqual(presented, expected)) matched = true;
  }
  if (!matched) {
    return { ok: false, reason: 'mismatch', detail: 'the signature does not match: sign "<t>.<X-Pveflow-Delivery>.<raw body>" exactly as sent, with the shared secret' };
  }
  const skew = Math.abs(Math.floor(now / 1000) - t);
  if (skew > WEBHOOK_TOLERANCE_S) {
    return {
      ok: false,
      reason: 'stale',
      detail: `the signature's timestamp t=${t} is ${skew} s away from this server's clock (at most ${WEBHOOK_TOLERANCE_S} s): sign each delivery when sending it, and check the sender's clock`,
    };
  }
  return { ok: true };
}
