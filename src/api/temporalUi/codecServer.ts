import { createHash, timingSafeEqual } from 'node:crypto';
import type { Payload, PayloadCodec } from '@temporalio/common';
import express, { type ErrorRequestHandler, type Request, type RequestHandler, type Router } from 'express';
import { z } from 'zod';

/**
 * Temporal's remote codec protocol, for Temporal UI and `temporal --codec-endpoint`: `POST /decode` and
 * `POST /encode` take and return `{"payloads":[...]}` in proto3 JSON, where every bytes field (`data` and each
 * metadata value) is base64. The UI calls from the browser, so CORS is answered for the UI's origin and no other;
 * the UI sends `X-Namespace`, and with "pass access token" an `Authorization` header, with "include credentials"
 * its cookies. Only callers `authorize` accepts get anything decoded: this endpoint turns ciphertext into the
 * VMs' passwords.
 */
export interface CodecServerOptions {
  codec: PayloadCodec;
  /** True for an operator allowed to read payloads. Runs after CORS, so a browser can read the 401. */
  authorize(req: Request): boolean;
  /**
   * Temporal UI's origin, exactly as the browser sends it (`http://127.0.0.1:8233`); or, for a codec served on the
   * UI's own origin (the Temporal UI gateway), a function giving the origin the request was addressed to.
   */
  allowedOrigin: string | ((req: Request) => string);
  /** When given, a request for any other namespace (X-Namespace) is refused. */
  namespaces?: readonly string[];
  /** Largest request body, read only once the caller is authorized. */
  bodyLimit?: string;
}

const ALLOWED_HEADERS = 'Authorization, Content-Type, X-Namespace';
const base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64');
const bodySchema = z.object({
  payloads: z.array(
    z.object({
      metadata: z.record(z.string(), base64).nullish(),
      data: base64.nullish(),
    }),
  ),
});
type JsonPayload = z.infer<typeof bodySchema>['payloads'][number];

export function createCodecServerRouter(opts: CodecServerOptions): Router {
  const fixedOrigin = typeof opts.allowedOrigin === 'string' ? new URL(opts.allowedOrigin).origin : undefined;
  const originFor = typeof opts.allowedOrigin === 'function' ? opts.allowedOrigin : () => fixedOrigin!;
  const router = express.Router();

  const cors: RequestHandler = (req, res, next) => {
    const allowedOrigin = originFor(req);
    const origin = req.headers.origin;
    // No Origin: the CLI or curl, not a browser; nothing to declare. A foreign origin learns nothing, not even a 401.
    if (origin === undefined) return next();
    if (origin !== allowedOrigin) {
      res.status(403).json({ error: 'origin not allowed', detail: `this codec server answers ${allowedOrigin} only` });
      return;
    }
    res.setHeader('Access-Control-Allow-Origin', allowedOrigin);
    res.setHeader('Access-Control-Allow-Credentials', 'true');
    res.setHeader('Vary', 'Origin');
    if (req.method === 'OPTIONS') {
      res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
      res.setHeader('Access-Control-Allow-Headers', ALLOWED_HEADERS);
      res.setHeader('Access-Control-Max-Age', '600');
      res.status(204).end();
      return;
    }
    next();
  };

  const auth: RequestHandler = (req, res, next) => {
    if (!opts.authorize(req)) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="pveflow codec"');
      res.status(401).json({ error: 'unauthorized', detail: 'decoding payloads is for pveflow operators' });
      return;
    }
    const namespace = req.header('x-namespace');
    if (opts.namespaces && (namespace === undefined || !opts.namespaces.includes(namespace))) {
      res.status(403).json({ error: 'namespace not served', detail: `this codec server serves ${opts.namespaces.join(', ')}` });
      return;
    }
    next();
  };

  const handle =
    (direction: 'encode' | 'decode'): RequestHandler =>
    async (req, res) => {
      const parsed = bodySchema.safeParse(req.body);
      if (!parsed.success) {
        res.status(400).json({ error: 'invalid request', detail: 'the body must be {"payloads":[{"metadata":{...},"data":"<base64>"}]}' });
        return;
      }
      let out: Payload[];
      try {
        const payloads = parsed.data.payloads.map(fromJson);
        out = direction === 'decode' ? await opts.codec.decode(payloads) : await opts.codec.encode(payloads);
      } catch (err) {
        // The codec's messages name key ids and what to do, never payload content.
        res.status(422).json({ error: `cannot ${direction}`, detail: (err as Error).message });
        return;
      }
      res.setHeader('Cache-Control', 'no-store');
      res.json({ payloads: out.map(toJson) });
    };

  router.use(cors);
  // Who is asking comes before the body: an unauthorized caller costs us no parsing. Our payloads are small (a
  // request's record is tens of kB), so a megabyte is room enough for a page of them.
  const json = express.json({ limit: opts.bodyLimit ?? '1mb' });
  for (const direction of ['encode', 'decode'] as const) {
    router.post(`/${direction}`, auth, json, handle(direction));
    router.all(`/${direction}`, (_req, res) => {
      res.setHeader('Allow', 'POST, OPTIONS');
      res.status(405).json({ error: 'method not allowed' });
    });
  }
  const bodyErrors: ErrorRequestHandler = (err, _req, res, next) => {
    const status = (err as { status?: number })?.status;
    if (status === 400) return void res.status(400).json({ error: 'invalid request', detail: 'the body is not valid JSON' });
    if (status === 413) return void res.status(413).json({ error: 'body too large' });
    next(err);
  };
  router.use(bodyErrors);
  return router;
}

/**
 * An `authorize` for shared bearer tokens (`Authorization: Bearer <token>`): what the UI's "pass access token"
 * sends, and what an operator passes to the CLI. Compared in constant time over hashes, so neither the content nor
 * the length of a token leaks through timing.
 */
export function bearerTokenAuthorizer(tokens: readonly string[]): (req: Request) => boolean {
  const wanted = tokens.filter((t) => t.length >= 16).map(digest);
  if (wanted.length === 0) throw new Error('codec server tokens must be at least 16 characters');
  return (req) => {
    const m = /^Bearer\s+(\S+)$/i.exec(req.header('authorization') ?? '');
    if (!m) return false;
    const presented = digest(m[1]!);
    return wanted.reduce((ok, w) => timingSafeEqual(w, presented) || ok, false);
  };
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

function fromJson(p: JsonPayload): Payload {
  return {
    metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
    data: Buffer.from(p.data ?? '', 'base64'),
  };
}

function toJson(p: Payload): { metadata: Record<string, string>; data: string } {
  return {
    metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
    data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
  };
}
