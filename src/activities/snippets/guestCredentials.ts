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
 * Rounds of SHA-512 crypt: the scheme's minimum. Key stretching slows the guessing of a weak password; ours are 120
 * random bits, out of reach at any round count. The default 5,000 cost 20 ms of CPU per hash, two per build, on the
 * worker's event loop; 1,000 cost 4 ms.
 */
const CRYPT_ROUNDS = 1000;

/**
 * SHA-512 crypt (`$6$`), what cloud-init's `passwd` / `chpasswd` `type: hash` take: only hashes go into the snippet,
 * so the node's disk never holds a password in clear. For generated passwords only (see CRYPT_ROUNDS). unixcrypt is
 * an ES module; this project is CommonJS.
 */
export async function sha512Crypt(password: string): Promise<string> {
  const { encrypt } = await import('unixcrypt');
  return encrypt(password, `$6$rounds=${CRYPT_ROUNDS}`);
}
