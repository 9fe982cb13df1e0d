import { stdSerializers } from 'pino';

/**
 * What must never reach a log line. Three nets, because no one of them sees everything:
 * - pino's `redact` option replaces the values of the keys pveflow knows hold secrets (`secretKeyPaths`), wherever
 *   pino serializes an object: a line's fields, a child's bindings, an object interpolated into the message.
 * - Fields whose *name* says they hold a secret (`isSecretKey`) are replaced whole at any depth and in any naming
 *   style, which pino's exact, fixed-depth paths cannot express (`arrowPassword`, `seeds[3].root_pw`).
 * - Secrets whose *shape* is known (a PVE token header, a NetBird PAT, a PEM private key, a password hash, an
 *   Authorization header) are cut out of any string, wherever they hide (a message, an error, a URL), and so are
 *   the secret values known from the configuration (the PVE token secret, the NetBird PAT). pino never looks inside
 *   values, so this runs as its `formatters.log`/`formatters.bindings` hooks and its `msg` serializer (log.ts).
 */
export const REDACTED = '[REDACTED]';

/** Compared after lower-casing and dropping `_`/`-`: `PVE_TOKEN_SECRET`, `tokenSecret`, `root_pw` all match. */
const SECRET_NAME_SUFFIXES = ['token', 'secret', 'password', 'passwd', 'pw', 'setupkey', 'privatekey', 'apikey', 'key', 'keys', 'authorization', 'cookie', 'credentials', 'passphrase'];

/**
 * The keys under which pveflow's configuration, clients and guest credentials carry secrets, as they are spelt (pino's
 * paths are case-sensitive): the environment's names, the clients' and seeds' fields, HTTP's headers.
 */
export const SECRET_KEYS = [
  'PVE_TOKEN_SECRET',
  'NETBIRD_TOKEN',
  'METRICS_TOKEN',
  'WEBHOOK_SECRET',
  'OIDC_CLIENT_SECRET',
  'API_KEYS',
  'PVEFLOW_CODEC_KEYS',
  'TEMPORAL_API_KEY',
  'token',
  'tokenSecret',
  'secret',
  'password',
  'passwd',
  'passphrase',
  'root_pw',
  'arrow_pw',
  'setupKey',
  'setup_key',
  'privateKey',
  'private_key',
  'apiKey',
  'key',
  'keys',
  'credentials',
  'authorization',
  'Authorization',
  'cookie',
  'Cookie',
  'set-cookie',
] as const;

/** How many levels below a line's top the paths reach (`*.*.token`); deeper keys are left to the name rule. */
const PATH_DEPTH = 3;

/** pino `redact.paths` for `SECRET_KEYS`: each at the top and under up to `PATH_DEPTH` levels of objects or arrays. */
export function secretKeyPaths(keys: readonly string[] = SECRET_KEYS): string[] {
  const paths: string[] = [];
  for (const key of keys) {
    const segment = /^[A-Za-z_$][\w$]*$/.test(key) ? key : `["${key}"]`;
    for (let depth = 0; depth <= PATH_DEPTH; depth++) {
      const prefix = '*.'.repeat(depth);
      paths.push(segment.startsWith('[') ? `${prefix.slice(0, -1)}${segment}` : `${prefix}${segment}`);
    }
  }
  return paths;
}

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
  return [...SECRET_NAME_SUFFIXES, ...extra.map((e) => e.toLowerCase().replace(/[^a-z0-9]/g, ''))].some((suffix) => n === suffix || n.endsWith(suffix));
}

export function redactText(text: string, knownSecrets: readonly string[] = []): string {
  let out = text;
  for (const secret of knownSecrets) if (secret.length >= 8) out = out.split(secret).join(REDACTED);
  for (const [pattern, replacement] of SHAPES) out = out.replace(pattern, replacement);
  return out;
}

const MAX_DEPTH = 8;

/**
 * A deep copy of `value` with secrets replaced by name and by shape; errors become pino's standard
 * `{type, message, stack, ...}` (their causes too), cycles `[Circular]`, buffers their size, bigints strings.
 */
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
      if (value instanceof Error) return walk({ ...stdSerializers.errWithCause(value) }, depth, seen);
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
