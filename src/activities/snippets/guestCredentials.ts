import { randomBytes } from 'node:crypto';

import type { GuestCredentials } from '../../domain/guestCredentials';

export const GUEST_USER = 'arrow';

/** 20 random characters from a URL-safe alphabet: ~120 bits, easy to paste, nothing a shell would interpret. */
function newPassword(): string {
  return randomBytes(15).toString('base64url');
}

export function generateGuestCredentials(): GuestCredentials {
  return { username: GUEST_USER, password: newPassword(), rootPassword: newPassword() };
}

/**
 * SHA-512 crypt (`$6$`), what cloud-init's `passwd` / `chpasswd` `type: HASH` take: only hashes go into the snippet,
 * so the node's disk never holds a password in clear. unixcrypt is an ES module; this project is CommonJS.
 */
export async function sha512Crypt(password: string): Promise<string> {
  const { encrypt } = await import('unixcrypt');
  return encrypt(password);
}
