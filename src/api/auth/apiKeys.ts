import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';

/**
 * API keys and who they belong to. A key is kept only as its SHA-256: the file (or env) that configures keys never
 * needs to hold one in clear, and a leaked file does not let anyone call the API.
 */
export type Role = 'requester' | 'admin' | 'operator';

export type Principal = { role: 'requester'; id: string; org: string; email: string } | { role: 'admin'; id: string; org: string; email?: string } | { role: 'operator'; id: string; email?: string };

const id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/, 'letters, digits, . _ @ - (at most 64)');
const org = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]*$/, 'letters, digits, space, . _ -');
const sha256 = z.string().regex(/^[0-9a-f]{64}$/, 'must be the hex SHA-256 of the key (sha256sum)');
/** A clear key, accepted from the environment for convenience and hashed at once. */
const clearKey = z.string().min(24, 'a key must be at least 24 characters').max(512);

const secret = { sha256: sha256.optional(), key: clearKey.optional() };

export const apiKeyEntrySchema = z
  .discriminatedUnion('role', [
    z.strictObject({ id, role: z.literal('requester'), org, email: z.email(), ...secret }),
    z.strictObject({ id, role: z.literal('admin'), org, email: z.email().optional(), ...secret }),
    z.strictObject({ id, role: z.literal('operator'), email: z.email().optional(), ...secret }),
  ])
  .refine((e) => (e.sha256 === undefined) !== (e.key === undefined), { message: 'give exactly one of sha256 or key' });

export type ApiKeyEntry = z.input<typeof apiKeyEntrySchema>;

/** `{"keys": [...]}` or the bare list; ids and keys must be unique. */
export const apiKeyListSchema = z
  .union([z.strictObject({ keys: z.array(apiKeyEntrySchema) }), z.array(apiKeyEntrySchema)])
  .transform((v) => (Array.isArray(v) ? v : v.keys))
  .superRefine((entries, ctx) => {
    const ids = new Set<string>();
    const hashes = new Set<string>();
    for (const [i, e] of entries.entries()) {
      if (ids.has(e.id)) ctx.addIssue({ code: 'custom', path: [i, 'id'], message: `duplicate key id ${e.id}` });
      const h = e.sha256 ?? hashApiKey(e.key!);
      if (hashes.has(h)) ctx.addIssue({ code: 'custom', path: [i], message: `key ${e.id} is the same key as an earlier entry` });
      ids.add(e.id);
      hashes.add(h);
    }
  });

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** A new key: 256 random bits, prefixed so it is recognisable in a secret scanner. */
export function generateApiKey(): string {
  return `pvf_${randomBytes(32).toString('base64url')}`;
}

/** The name a principal acts under: what a request's timeline records as `by`. */
export function actorOf(p: Principal): string {
  return p.email ?? `${p.role}:${p.id}`;
}

export class ApiKeyStore {
  private readonly entries: Array<{ hash: Buffer; principal: Principal }>;

  constructor(entries: readonly ApiKeyEntry[]) {
    this.entries = entries.map((raw) => {
      const e = apiKeyEntrySchema.parse(raw);
      const hash = Buffer.from(e.sha256 ?? hashApiKey(e.key!), 'hex');
      const principal: Principal =
        e.role === 'requester'
          ? { role: e.role, id: e.id, org: e.org, email: e.email }
          : e.role === 'admin'
            ? { role: e.role, id: e.id, org: e.org, ...(e.email ? { email: e.email } : {}) }
            : { role: e.role, id: e.id, ...(e.email ? { email: e.email } : {}) };
      return { hash, principal };
    });
  }

  get size(): number {
    return this.entries.length;
  }

  /** Who the configured keys belong to (for the list of keys: never a hash). */
  principals(): Principal[] {
    return this.entries.map((e) => e.principal);
  }

  /** The principal of a key id: a session minted for that key holds only while the key is still configured. */
  principalById(id: string): Principal | undefined {
    return this.entries.find((e) => e.principal.id === id)?.principal;
  }

  /**
   * The principal holding `key`, or undefined. Every stored hash is compared in constant time and the loop never
   * stops early, so the answer's timing says nothing about which key (or how much of one) matched.
   */
  authenticate(key: string): Principal | undefined {
    const presented = createHash('sha256').update(key, 'utf8').digest();
    let found: Principal | undefined;
    for (const e of this.entries) {
      if (timingSafeEqual(presented, e.hash) && !found) found = e.principal;
    }
    return found;
  }
}
