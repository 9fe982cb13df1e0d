/**
 * What must never reach a log line. Two nets: fields whose *name* says they hold a secret are replaced whole,
 * and secrets whose *shape* is known (a PVE token header, a NetBird PAT, a PEM private key, a password hash, an
 * Authorization header) are cut out of any string, wherever they hide (an error message, a URL, a nested field).
 * Known secret values from the configuration (the PVE token secret, the NetBird PAT) are cut out verbatim too.
 *
 * Kept apart from the logger so that pino, when it replaces our writer, runs the same function as its
 * `formatters.log` hook: pino's own `redact` matches paths, not names at any depth, and never looks inside values.
 */
export const REDACTED = '[REDACTED]';

/** Compared after lower-casing and dropping `_`/`-`: `PVE_TOKEN_SECRET`, `tokenSecret`, `root_pw` all match. */
const SECRET_NAME_SUFFIXES = [
  'token', 'secret', 'password', 'passwd', 'pw', 'setupkey', 'privatekey', 'apikey', 'key', 'authorization', 'cookie',
  'credentials', 'passphrase',
];

const SHAPES: Array<[RegExp, string]> = [
  // The secret after the token id; the id itself (user@realm!name) helps an operator and is kept.
  [/(PVEAPIToken=[^\s=!]+![^\s=]+=)[^\s"',;]+/g, `$1${REDACTED}`],
  [/\bnbp_[A-Za-z0-9]{16,}/g, `nbp_${REDACTED}`],
  [/-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY)-----[\s\S]*?(?:-----END \1-----|$)/g, `${REDACTED} PRIVATE KEY`],
  [/\$(?:6|5|y|2[aby])\$[^\s"',;]{8,}/g, `${REDACTED} PASSWORD HASH`],
  [/\b(authorization["']?\s*[:=]\s*["']?)(Bearer|Token|Basic)\s+[^\s"',;]+/gi, `$1$2 ${REDACTED}`],
  [/\b(Bearer)\s+[A-Za-z0-9._~+/-]{16,}=*/g, `$1 ${REDACTED}`],
];

export interface RedactorOptions {
  /** Secret values known at start-up (token secrets, PATs): cut out of every string. At least 8 characters. */
  knownSecrets?: readonly string[];
  /** More field names to treat as secret, beyond the built-in list. */
  extraKeys?: readonly string[];
}

export type Redactor = (value: unknown) => unknown;

export function isSecretKey(name: string, extra: readonly string[] = []): boolean {
  const n = name.toLowerCase().replace(/[^a-z0-9]/g, '');
  return [...SECRET_NAME_SUFFIXES, ...extra.map((e) => e.toLowerCase().replace(/[^a-z0-9]/g, ''))].some(
    (suffix) => n === suffix || n.endsWith(suffix),
  );
}

export function redactText(text: string, knownSecrets: readonly string[] = []): string {
  let out = text;
  for (const secret of knownSecrets) if (secret.length >= 8) out = out.split(secret).join(REDACTED);
  for (const [pattern, replacement] of SHAPES) out = out.replace(pattern, replacement);
  return out;
}

const MAX_DEPTH = 8;

/** A deep copy of `value` with secrets replaced; errors become `{type, message, stack}`, cycles `[Circular]`. */
export function createRedactor(opts: RedactorOptions = {}): Redactor {
  const known = (opts.knownSecrets ?? []).filter((s) => s.length >= 8);
  const extra = opts.extraKeys ?? [];
  const walk = (value: unknown, depth: number, seen: WeakSet<object>): unknown => {
    if (typeof value === 'string') return redactText(value, known);
    if (typeof value === 'bigint') return value.toString();
    if (value === null || typeof value !== 'object') return value;
    if (seen.has(value)) return '[Circular]';
    if (depth >= MAX_DEPTH) return '[Truncated]';
    if (Buffer.isBuffer(value) || value instanceof Uint8Array) return `[${value.byteLength} bytes]`;
    if (value instanceof Date) return value.toISOString();
    seen.add(value);
    try {
      if (value instanceof Error) {
        const err = value as Error & { code?: unknown; cause?: unknown };
        return {
          type: err.name,
          message: redactText(err.message, known),
          ...(typeof err.code === 'string' || typeof err.code === 'number' ? { code: err.code } : {}),
          ...(err.stack ? { stack: redactText(err.stack, known) } : {}),
          ...(err.cause !== undefined ? { cause: walk(err.cause, depth + 1, seen) } : {}),
        };
      }
      if (Array.isArray(value)) return value.map((v) => walk(v, depth + 1, seen));
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        out[k] = isSecretKey(k, extra) && v !== undefined && v !== null && v !== '' ? REDACTED : walk(v, depth + 1, seen);
      }
      return out;
    } finally {
      seen.delete(value);
    }
  };
  return (value) => walk(value, 0, new WeakSet());
}
