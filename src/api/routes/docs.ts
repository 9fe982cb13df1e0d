import { Router } from 'express';
import type { buildOpenApiDocument } from '../openapi';

type OpenApiDocument = ReturnType<typeof buildOpenApiDocument>;

/** `/api/openapi.json` and `/api/docs`: the document, and a plain page listing its operations (no CDN, no script). */
export function docsRoutes(document: OpenApiDocument): Router {
  const router = Router();
  const page = docsPage(document);
  router.get('/openapi.json', (_req, res) => {
    res.json(document);
  });
  router.get('/docs', (_req, res) => {
    res.type('html').set('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'").send(page);
  });
  return router;
}

function docsPage(doc: OpenApiDocument): string {
  const rows: string[] = [];
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const method of ['get', 'post', 'put', 'patch', 'delete'] as const) {
      const op = item?.[method];
      if (!op) continue;
      const statuses = Object.keys(op.responses ?? {}).join(' ');
      rows.push(
        `<tr><td class="m">${method.toUpperCase()}</td><td><code>${esc(path)}</code></td><td><b>${esc(op.summary ?? '')}</b><br>${esc(op.description ?? '')}</td>` +
          `<td>${op.security?.length ? 'API key' : 'none'}</td><td>${esc(statuses)}</td></tr>`,
      );
    }
  }
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(doc.info.title)}</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:75em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.4em;vertical-align:top;text-align:left}.m{font-weight:bold}code{white-space:nowrap}</style>
</head><body>
<h1>${esc(doc.info.title)} ${esc(doc.info.version)}</h1>
<p>${esc(doc.info.description ?? '')}</p>
<p>Authenticate with <code>Authorization: Bearer &lt;key&gt;</code>. The machine-readable document: <a href="/api/openapi.json">/api/openapi.json</a>.</p>
<table><thead><tr><th>method</th><th>path</th><th>what</th><th>auth</th><th>answers</th></tr></thead><tbody>
${rows.join('\n')}
</tbody></table>
</body></html>
`;
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}
