import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseKeyFile, type CodecKey } from './keyRing';

/** The embedded default's key file under the data directory. */
export const DEFAULT_KEY_FILE_NAME = 'codec-keys.json';

/** A fresh key with an id that sorts by creation date, so an operator sees which key is newer. */
export function generateCodecKey(now = new Date()): CodecKey {
  const day = now.toISOString().slice(0, 10).replace(/-/g, '');
  return { id: `k${day}-${randomBytes(3).toString('hex')}`, key: randomBytes(32) };
}

/**
 * The key file under `dir`, created with one generated key when absent (the embedded default's encryption, on
 * without any setup). Created exclusively (`wx`), so two processes starting together end up with the same file;
 * mode 0600 because whoever reads it can read every payload.
 */
export function ensureKeyFile(dir: string, fileName = DEFAULT_KEY_FILE_NAME): { path: string; created: boolean } {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, fileName);
  try {
    writeFileSync(path, serialize([generateCodecKey()]), { flag: 'wx', mode: 0o600 });
    return { path, created: true };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return { path, created: false };
    throw err;
  }
}

/**
 * Rotation: a new key becomes the active one (first), the old ones stay to decrypt existing histories. Processes
 * read the file at start-up, so they pick the new key up when restarted; until then they keep writing with the old
 * one, which every process can still read. The file is replaced atomically.
 */
export function rotateKeyFile(path: string): { activeKeyId: string; keyIds: string[] } {
  const existing = parseKeyFile(readFileSync(path, 'utf8'), path);
  const keys = [generateCodecKey(), ...existing];
  const temp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(temp, serialize(keys), { flag: 'wx', mode: 0o600 });
  renameSync(temp, path);
  return { activeKeyId: keys[0]!.id, keyIds: keys.map((k) => k.id) };
}

function serialize(keys: readonly CodecKey[]): string {
  const body = {
    comment: 'pveflow payload keys: the first is active, the others only decrypt older payloads. Keep secret.',
    keys: keys.map((k) => ({ id: k.id, key: k.key.toString('base64') })),
  };
  return `${JSON.stringify(body, null, 2)}\n`;
}
