import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from 'node:crypto';
import { mkdir, open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import type { GuestCredentials, SealedCredentials } from '../domain/guestCredentials';

const keyFileSchema = z.object({ keyId: z.string().min(1), key: z.base64() });
/** Serials and the like: never a path. */
const SERIAL = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/**
 * Crypto-shredding of guest credentials: one data key per request, in a directory the API and the workers share
 * (CREDENTIAL_KEYS_DIR) and nowhere else. The workers seal the generated logins with it; the API opens them once for a
 * consultant and destroys the key, and the request destroys it at its end. After that, every copy of the logins that
 * Temporal keeps (histories, the reveal's answer) is ciphertext without a key: the codec keys decrypt the payloads,
 * not what is sealed inside them.
 */
export class CredentialKeys {
  constructor(readonly dir: string) {}

  /** Seals `credentials` under the request's key, creating the key on first use (every build of a request shares it). */
  async seal(serial: string, credentials: GuestCredentials): Promise<SealedCredentials> {
    const { keyId, key } = (await this.read(serial)) ?? (await this.create(serial));
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(Buffer.from(`${serial}:${keyId}`));
    const ciphertext = Buffer.concat([cipher.update(JSON.stringify(credentials), 'utf8'), cipher.final()]);
    return { keyId, iv: iv.toString('base64'), ciphertext: ciphertext.toString('base64'), tag: cipher.getAuthTag().toString('base64') };
  }

  /** The request's key, or undefined once destroyed (or never made). */
  async read(serial: string): Promise<{ keyId: string; key: Buffer } | undefined> {
    let text: string;
    try {
      text = await readFile(this.path(serial), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const parsed = keyFileSchema.parse(JSON.parse(text));
    return { keyId: parsed.keyId, key: Buffer.from(parsed.key, 'base64') };
  }

  /** Opens what `seal` made with the key `read` gave; throws when the key is another (a later build's) or the data was altered. */
  static open(serial: string, key: { keyId: string; key: Buffer }, sealed: SealedCredentials): GuestCredentials {
    if (sealed.keyId !== key.keyId) throw new Error(`the credentials of ${serial} were sealed under key ${sealed.keyId}, which is destroyed`);
    const decipher = createDecipheriv('aes-256-gcm', key.key, Buffer.from(sealed.iv, 'base64'));
    decipher.setAAD(Buffer.from(`${serial}:${key.keyId}`));
    decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
    const text = Buffer.concat([decipher.update(Buffer.from(sealed.ciphertext, 'base64')), decipher.final()]).toString('utf8');
    return JSON.parse(text) as GuestCredentials;
  }

  /**
   * Destroys the request's key: overwritten, flushed, then unlinked, so neither the file nor (on a filesystem that
   * writes in place) its old blocks keep it. Whether it existed.
   */
  async destroy(serial: string): Promise<boolean> {
    const path = this.path(serial);
    let file;
    try {
      file = await open(path, 'r+');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
    try {
      const { size } = await file.stat();
      await file.write(Buffer.alloc(size), 0, size, 0);
      await file.sync();
    } finally {
      await file.close();
    }
    await unlink(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    return true;
  }

  private async create(serial: string): Promise<{ keyId: string; key: Buffer }> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const made = { keyId: randomUUID(), key: randomBytes(32) };
    try {
      const file = await open(this.path(serial), 'wx', 0o600);
      try {
        await file.writeFile(JSON.stringify({ keyId: made.keyId, key: made.key.toString('base64') }));
        await file.sync();
      } finally {
        await file.close();
      }
      return made;
    } catch (err) {
      // Another worker made it first: seal under theirs, so that one key opens every copy.
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return (await this.read(serial))!;
      throw err;
    }
  }

  private path(serial: string): string {
    if (!SERIAL.test(serial)) throw new Error(`not a request serial: ${JSON.stringify(serial)}`);
    return join(this.dir, `${serial}.key.json`);
  }
}
