import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { METADATA_ENCODING_KEY, type Payload, type PayloadCodec } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { KeyRing } from './keyRing';

/** The same metadata names as Temporal's encryption samples, so their tools recognise our payloads. */
export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const METADATA_KEY_ID = 'encryption-key-id';

const IV_BYTES = 12;
const TAG_BYTES = 16;
const ProtoPayload = temporal.api.common.v1.Payload;

export class PayloadDecryptionError extends Error {
  override readonly name = 'PayloadDecryptionError';
}

/**
 * AES-256-GCM over the whole serialized payload (its metadata too: the original encoding and message type say
 * something about the content). Each payload gets a random 96-bit IV; the key id is bound as additional
 * authenticated data, so a payload relabelled with another key id fails authentication instead of decrypting to
 * garbage. Layout of `data`: IV (12) || ciphertext || tag (16).
 *
 * Payloads without the encrypted encoding are passed through on decode: histories written before encryption was
 * switched on stay readable.
 */
export class AesGcmPayloadCodec implements PayloadCodec {
  constructor(private readonly ring: KeyRing) {}

  async encode(payloads: Payload[]): Promise<Payload[]> {
    const { id, key } = this.ring.active;
    return payloads.map((payload) => {
      const plain = ProtoPayload.encode(payload).finish();
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
      cipher.setAAD(Buffer.from(id, 'utf8'));
      const data = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
      return {
        metadata: {
          [METADATA_ENCODING_KEY]: Buffer.from(ENCRYPTED_ENCODING),
          [METADATA_KEY_ID]: Buffer.from(id),
        },
        data,
      };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => {
      const encoding = text(payload.metadata?.[METADATA_ENCODING_KEY]);
      if (encoding !== ENCRYPTED_ENCODING) return payload;
      const id = text(payload.metadata?.[METADATA_KEY_ID]);
      if (!id) throw new PayloadDecryptionError(`an encrypted payload carries no '${METADATA_KEY_ID}' metadata`);
      const key = this.ring.get(id);
      const data = Buffer.from(payload.data ?? new Uint8Array());
      if (data.length < IV_BYTES + TAG_BYTES) {
        throw new PayloadDecryptionError(`an encrypted payload (key '${id}') is too short to be one: it was truncated`);
      }
      const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES), { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(id, 'utf8'));
      decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
      let plain: Buffer;
      try {
        plain = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
      } catch {
        throw new PayloadDecryptionError(`an encrypted payload failed authentication with key '${id}': it was altered, or the key with that id ` + 'is not the one it was written with');
      }
      return ProtoPayload.decode(plain);
    });
  }
}

function text(bytes: Uint8Array | null | undefined): string | undefined {
  return bytes ? Buffer.from(bytes).toString('utf8') : undefined;
}
