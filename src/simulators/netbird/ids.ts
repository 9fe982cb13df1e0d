import { randomBytes, randomUUID } from 'node:crypto';

const XID_ALPHABET = '0123456789abcdefghijklmnopqrstuv';

/** An id shaped like NetBird's (rs/xid: 20 characters of base32hex, e.g. `ch8i4ug6lnn4g9hqv7m0`). */
export function xidLike(): string {
  const bytes = randomBytes(20);
  let id = '';
  for (const b of bytes) id += XID_ALPHABET[b % 32];
  return id;
}

/** A plain setup key as NetBird issues it: an upper-case UUID. */
export function newSetupKeySecret(): string {
  return randomUUID().toUpperCase();
}

/** What NetBird shows of a setup key after creation: its first five characters and a mask. */
export function maskSetupKey(key: string): string {
  return `${key.slice(0, 5)}****`;
}
