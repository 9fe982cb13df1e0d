import { createHash } from 'node:crypto';
import { utils, type ParsedKey } from 'ssh2';

export interface SshKeyPair {
  /** OpenSSH private key (`-----BEGIN OPENSSH PRIVATE KEY-----`), readable by ssh2 and OpenSSH alike. */
  privateKey: string;
  /** One authorized_keys line: `ssh-ed25519 AAAA... <comment>`. */
  publicKey: string;
}

/** A fresh Ed25519 key pair, in the formats OpenSSH writes, so sshd and ssh-keygen accept it as is. */
export function generateSshKeyPair(comment = 'pveflow'): SshKeyPair {
  // ssh2 1.17 writes an ed25519 key whose public half starts with a zero byte as 31 bytes instead of 32 (a leading
  // zero dropped as if it were a number): OpenSSH then refuses the key ("error in libcrypto"), about 1 key in 100.
  // Such a draw is detected by the public blob's length (4+11 type, 4+32 key) and simply drawn again.
  for (let attempt = 0; attempt < 16; attempt++) {
    const pair = utils.generateKeyPairSync('ed25519', { comment });
    const blob = Buffer.from(pair.public.split(' ')[1] ?? '', 'base64');
    if (blob.length === ED25519_PUBLIC_BLOB_LENGTH) return { privateKey: pair.private, publicKey: pair.public };
  }
  throw new Error('could not generate a valid ed25519 key pair');
}

const ED25519_PUBLIC_BLOB_LENGTH = 4 + 'ssh-ed25519'.length + 4 + 32;

/**
 * The key's fingerprint exactly as `ssh-keygen -lf` and the OpenSSH client print it: `SHA256:` followed by the
 * unpadded base64 SHA-256 of the key's wire-format blob. Accepts an authorized_keys line, the raw wire blob, or a
 * private key (whose public half is fingerprinted — handy for a server's own host key).
 */
export function sshFingerprint(key: string | Buffer): string {
  return fingerprintOfBlob(parseSshKey(key).getPublicSSH());
}

/** The fingerprint of a key given as its wire-format blob (what ssh2 hands a host verifier). */
export function fingerprintOfBlob(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type named inside a wire-format blob (`ssh-ed25519`, `ssh-rsa`, ...), for messages. */
export function keyTypeOfBlob(blob: Buffer): string {
  if (blob.length < 4) return 'unknown';
  const length = blob.readUInt32BE(0);
  return length > 0 && 4 + length <= blob.length ? blob.toString('latin1', 4, 4 + length) : 'unknown';
}

export function parseSshKey(key: string | Buffer): ParsedKey {
  const parsed = utils.parseKey(key);
  const first = Array.isArray(parsed) ? parsed[0] : parsed;
  if (first === undefined || first instanceof Error) {
    const reason = first instanceof Error ? first.message : 'no key found';
    throw new Error(`not an SSH key (${reason}); expected an OpenSSH key such as 'ssh-ed25519 AAAA... comment'`);
  }
  return first;
}
