import { hkdfSync } from 'node:crypto';
import { AesGcmPayloadCodec } from './aesGcmCodec';
import { ensureKeyFile } from './keyFile';
import { loadKeyRing, type KeyRingSources } from './keyRing';

/**
 * Encrypted payloads: what the worker, the API's client and every tool put into Temporal is AES-256-GCM ciphertext;
 * only processes holding the key ring (and the codec server, for operators) can read it.
 */
export { AesGcmPayloadCodec, ENCRYPTED_ENCODING, METADATA_KEY_ID, PayloadDecryptionError } from './aesGcmCodec';
export { DEFAULT_KEY_FILE_NAME, ensureKeyFile, generateCodecKey, rotateKeyFile } from './keyFile';
export { CodecKeyError, KeyRing, loadKeyRing, parseKeyFile, parseKeyList, type CodecKey, type KeyRingSources } from './keyRing';

export interface CodecSetup {
  codec: AesGcmPayloadCodec;
  activeKeyId: string;
  /** Where the keys came from, for the start-up banner (never the keys themselves). */
  source: string;
  /**
   * A key for another purpose, derived from the active payload key (HKDF-SHA256, the purpose as info): every process
   * holding the ring derives the same one, and none of them can get back to the payload key from it.
   */
  deriveKey(purpose: string): Buffer;
}

/**
 * The codec from PVEFLOW_CODEC_KEYS / PVEFLOW_CODEC_KEY_FILE; when neither is set and `generateUnder` is given
 * (the embedded default passes its data directory), a key file is generated there on first start.
 */
export function payloadCodecFrom(sources: KeyRingSources, opts: { generateUnder?: string } = {}): CodecSetup | undefined {
  let effective = sources;
  let source = sources.keys ? 'PVEFLOW_CODEC_KEYS' : sources.keyFile ? `PVEFLOW_CODEC_KEY_FILE=${sources.keyFile}` : '';
  if (!sources.keys && !sources.keyFile && opts.generateUnder) {
    const file = ensureKeyFile(opts.generateUnder);
    effective = { keyFile: file.path };
    source = `${file.path}${file.created ? ' (generated)' : ''}`;
  }
  const ring = loadKeyRing(effective);
  if (!ring) return undefined;
  return {
    codec: new AesGcmPayloadCodec(ring),
    activeKeyId: ring.active.id,
    source,
    deriveKey: (purpose) => Buffer.from(hkdfSync('sha256', ring.active.key, Buffer.alloc(0), `pveflow ${purpose}`, 32)),
  };
}
