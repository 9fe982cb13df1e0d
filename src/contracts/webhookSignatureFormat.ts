/**
 * The webhook's signature, in the shape Stripe and Standard Webhooks use: `X-Pveflow-Signature: t=<unix seconds>,v1=<hex>`
 * where `<hex>` is HMAC-SHA256 under the shared secret of `<t>.<delivery id>.<raw body>`. Signing the delivery id
 * means a captured body cannot be replayed under a fresh id; signing the time bounds how long a capture is worth
 * anything (WEBHOOK_TOLERANCE_S either side of our clock). Several `v1=` entries may be sent (secret rotation): one
 * match is enough. The header's shape lives apart from the crypto (webhookSignature.ts), so that the wire schemas —
 * which the browser console's types read too — need no Node built-in.
 */
export const WEBHOOK_TOLERANCE_S = 300;

export const SIGNATURE_FORMAT = 't=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<X-Pveflow-Delivery>.<raw body>" under WEBHOOK_SECRET>';

/** Header syntax: the timestamp, then one to four v1 signatures (more than one while a secret is being rotated). */
export const SIGNATURE_PATTERN = /^t=\d{1,12}(,v1=[0-9a-f]{64}){1,4}$/;
