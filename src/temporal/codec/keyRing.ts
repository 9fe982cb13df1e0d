import { readFileSync } from 'node:fs';
import { z } from 'zod';

/**
 * The payload encryption keys. The first key is the active one: every new payload is encrypted with it. The others
 * stay in the ring only to decrypt what was written before a rotation — histories live as long as their retention
 * period, so a key can leave the ring only once no open or retained workflow was written with it.
 */
export interface CodecKey {
  /** Written into each payload's metadata, so decryption picks the right key after a rotation. Not secret. */
  id: string;
  /** 32 bytes (AES-256). */
  key: Buffer;
}

export class CodecKeyError extends Error {
  override readonly name = 'CodecKeyError';
}

const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const KEY_BYTES = 32;

export class KeyRing {
  readonly active: CodecKey;
  readonly #byId: ReadonlyMap<string, Buffer>;

  constructor(keys: readonly CodecKey[]) {
    if (keys.length === 0) throw new CodecKeyError('the payload key ring is empty: give at least one key');
    const byId = new Map<string, Buffer>();
    for (const { id, key } of keys) {
      if (!KEY_ID.test(id)) {
        throw new CodecKeyError(`payload key id '${id}' is not valid: use letters, digits, '.', '_' or '-' (at most 64)`);
      }
      if (key.length !== KEY_BYTES) {
        throw new CodecKeyError(`payload key '${id}' is ${key.length} bytes; AES-256 needs exactly ${KEY_BYTES} (generate one with ` + '`openssl rand -base64 32`)');
      }
      if (byId.has(id)) throw new CodecKeyError(`payload key id '${id}' appears twice in the key ring`);
      byId.set(id, key);
    }
    this.active = keys[0]!;
    this.#byId = byId;
  }

  get ids(): string[] {
    return [...this.#byId.keys()];
  }

  /** The key with this id; an error naming the id and where keys come from when the ring lacks it. */
  get(id: string): Buffer {
    const key = this.#byId.get(id);
    if (key) return key;
    throw new CodecKeyError(
      `this payload was encrypted with key '${id}', which is not in the key ring (it holds: ${this.ids.join(', ')}). ` +
        'Add that key back to PVEFLOW_CODEC_KEYS or PVEFLOW_CODEC_KEY_FILE, after the active key, on every worker, ' +
        'API and codec server.',
    );
  }
}

/** `id1:base64key,id2:base64key` (PVEFLOW_CODEC_KEYS). Base64 may be standard or URL-safe. */
export function parseKeyList(text: string, source = 'PVEFLOW_CODEC_KEYS'): CodecKey[] {
  return splitEntries(text, /[,\n]/).map((entry, i) => parseEntry(entry, `${source} entry ${i + 1}`));
}

const jsonKeyFileSchema = z.union([z.object({ keys: z.array(z.object({ id: z.string(), key: z.string() })).min(1) }), z.array(z.object({ id: z.string(), key: z.string() })).min(1)]);

/**
 * A key file: JSON (`{"keys":[{"id":"...","key":"<base64>"}]}` or just the array), or one `id:base64key` a line
 * with `#` comments. The first key is the active one in both forms.
 */
export function parseKeyFile(text: string, path: string): CodecKey[] {
  const trimmed = text.trim();
  if (trimmed.startsWith('{') || trimmed.startsWith('[')) {
    let json: unknown;
    try {
      json = JSON.parse(trimmed);
    } catch (err) {
      throw new CodecKeyError(`payload key file ${path} is not valid JSON: ${(err as Error).message}`);
    }
    const parsed = jsonKeyFileSchema.safeParse(json);
    if (!parsed.success) {
      throw new CodecKeyError(`payload key file ${path} must hold {"keys":[{"id":"...","key":"<base64 of 32 bytes>"}]}`);
    }
    const entries = Array.isArray(parsed.data) ? parsed.data : parsed.data.keys;
    return entries.map(({ id, key }, i) => ({ id, key: decodeKey(key, `${path} key ${i + 1} ('${id}')`) }));
  }
  const lines = splitEntries(
    trimmed
      .split('\n')
      .map((l) => l.replace(/#.*$/, ''))
      .join('\n'),
    /\n/,
  );
  return lines.map((line, i) => parseEntry(line, `${path} entry ${i + 1}`));
}

export interface KeyRingSources {
  /** PVEFLOW_CODEC_KEYS */
  keys?: string;
  /** PVEFLOW_CODEC_KEY_FILE */
  keyFile?: string;
}

/** The key ring from the environment's sources; undefined when neither is given (encryption off). */
export function loadKeyRing(sources: KeyRingSources): KeyRing | undefined {
  if (sources.keys && sources.keyFile) {
    throw new CodecKeyError('both PVEFLOW_CODEC_KEYS and PVEFLOW_CODEC_KEY_FILE are set: give the payload keys in one place only, so ' + 'that every process agrees on the active key');
  }
  if (sources.keys) return new KeyRing(parseKeyList(sources.keys));
  if (sources.keyFile) {
    let text: string;
    try {
      text = readFileSync(sources.keyFile, 'utf8');
    } catch (err) {
      throw new CodecKeyError(`cannot read payload key file ${sources.keyFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    return new KeyRing(parseKeyFile(text, sources.keyFile));
  }
  return undefined;
}

function splitEntries(text: string, separator: RegExp): string[] {
  return text
    .split(separator)
    .map((e) => e.trim())
    .filter(Boolean);
}

function parseEntry(entry: string, where: string): CodecKey {
  const colon = entry.indexOf(':');
  if (colon <= 0) throw new CodecKeyError(`${where} is not 'id:base64key'`);
  const id = entry.slice(0, colon).trim();
  return { id, key: decodeKey(entry.slice(colon + 1).trim(), `${where} ('${id}')`) };
}

/** The message never quotes the key material, only its length. */
function decodeKey(text: string, where: string): Buffer {
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) throw new CodecKeyError(`${where}: the key is not base64`);
  return Buffer.from(text.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}
