import type { RequestHandler } from 'express';
import type { buildOpenApiDocument } from '../openapi';
import { problem } from './problems';

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

/**
 * 405 with `Allow` for a method that a path of the OpenAPI document does not serve (RFC 9110 §15.5.6), instead of
 * the 404 an unknown path gets. The document is the list of what is served, so the two cannot drift apart. HEAD is
 * served wherever GET is.
 */
export function methodNotAllowed(document: ReturnType<typeof buildOpenApiDocument>): RequestHandler {
  const paths = Object.entries(document.paths ?? {}).map(([template, item]) => {
    const methods = METHODS.filter((m) => item?.[m] !== undefined).map((m) => m.toUpperCase());
    if (methods.includes('GET')) methods.push('HEAD');
    const pattern = new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\{[^}]+\}/g, '[^/]+')}/?$`);
    return { pattern, methods };
  });
  return (req, res, next) => {
    const known = paths.find((p) => p.pattern.test(req.path));
    if (!known || known.methods.includes(req.method)) return next();
    res.setHeader('Allow', known.methods.join(', '));
    problem(res, 405, 'method not allowed', `${req.method} is not served on ${req.path}; it serves ${known.methods.join(', ')}`);
  };
}
