import { createHmac, timingSafeEqual } from 'node:crypto';

/** `sha256=<hex>`: HMAC-SHA256 of the raw body under the shared secret, the convention GitHub and others use. */
export function signWebhook(secret: string, rawBody: Buffer | string): string {
  return `sha256=${createHmac('sha256', secret).update(rawBody).digest('hex')}`;
}

/** Constant-time check of a signature header against the raw body, exactly as received. */
export function verifyWebhookSignature(secret: string, rawBody: Buffer, header: string): boolean {
  const expected = Buffer.from(signWebhook(secret, rawBody));
  const presented = Buffer.from(header);
  return presented.length === expected.length && timingSafeEqual(presented, expected);
}
