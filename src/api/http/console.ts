import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { build, type BuildOptions } from 'esbuild';
import { Router, type Request, type Response } from 'express';

/** The console's sources: TSX and hand-written CSS, bundled here rather than shipped pre-built. */
const sourceDir = join(__dirname, '..', '..', 'console');

/**
 * Self only: the bundle, its stylesheet and the API on the same origin. Nothing inline, nothing from elsewhere, no
 * framing — an API key lives in this page's session storage.
 */
export const consoleCsp = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

type Assets = Record<'/index.html' | '/app.js' | '/app.css', Asset>;

/**
 * The web console at `/`: one minified bundle built in memory when the API starts (esbuild, a few hundred ms), then
 * served from memory. It speaks to the HTTP API only, like any other client.
 *
 * Unknown paths fall back to the page only for a browser navigating (Accept: text/html), so that a machine asking a
 * path this router does not know still hears 404 from whatever is mounted after it.
 */
export function consoleRoutes(): Router {
  const router = Router();
  const assets = consoleAssets();

  const send = (name: keyof Assets) => async (req: Request, res: Response) => {
    let asset: Asset;
    try {
      asset = (await assets)[name];
    } catch (err) {
      res
        .status(503)
        .type('text/plain')
        .send(`The web console could not be built: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    res.set({
      'Content-Type': asset.type,
      // Revalidated on every load (a cheap 304): the names are fixed, so an upgraded API must never serve stale code.
      'Cache-Control': 'no-cache',
      ETag: asset.etag,
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
      ...(name === '/index.html' ? { 'Content-Security-Policy': consoleCsp, 'X-Frame-Options': 'DENY' } : {}),
    });
    if (req.fresh) {
      res.status(304).end();
      return;
    }
    res.status(200).send(asset.body);
  };

  router.get('/', send('/index.html'));
  router.get('/index.html', send('/index.html'));
  router.get('/app.js', send('/app.js'));
  router.get('/app.css', send('/app.css'));
  router.get(/^\/(?!api(\/|$)).*/, (req, res, next) => {
    if (!/text\/html/.test(req.get('accept') ?? '')) return next();
    return send('/index.html')(req, res);
  });
  return router;
}

let built: Promise<Assets> | undefined;

/** Built once per process, however many apps it serves (tests create many). */
function consoleAssets(): Promise<Assets> {
  if (!built) {
    built = buildConsoleAssets();
    // An unhandled rejection would bring the API down for want of a web page; the routes report it instead.
    built.catch((err: unknown) => console.error('[pveflow] web console could not be built:', err));
  }
  return built;
}

async function buildConsoleAssets(): Promise<Assets> {
  const common: BuildOptions = { bundle: true, minify: true, write: false, logLevel: 'silent', legalComments: 'none', target: ['es2020'] };
  const [js, css, html] = await Promise.all([
    build({
      ...common,
      entryPoints: [join(sourceDir, 'main.tsx')],
      format: 'iife',
      jsx: 'automatic',
      jsxImportSource: 'preact',
      tsconfig: join(sourceDir, 'tsconfig.json'),
      define: { 'process.env.NODE_ENV': '"production"' },
    }),
    build({ ...common, entryPoints: [join(sourceDir, 'app.css')], loader: { '.css': 'css' } }),
    readFile(join(sourceDir, 'index.html')),
  ]);
  const output = (result: { outputFiles?: Array<{ contents: Uint8Array }> }, what: string) => {
    const file = result.outputFiles?.[0];
    if (!file) throw new Error(`esbuild produced no ${what}`);
    return file.contents;
  };
  const asset = (body: Buffer | Uint8Array, type: string): Asset => {
    const bytes = Buffer.from(body);
    return { body: bytes, type, etag: `"${createHash('sha256').update(bytes).digest('base64url').slice(0, 27)}"` };
  };
  return {
    '/index.html': asset(html, 'text/html; charset=utf-8'),
    '/app.js': asset(output(js, 'script'), 'text/javascript; charset=utf-8'),
    '/app.css': asset(output(css, 'stylesheet'), 'text/css; charset=utf-8'),
  };
}
