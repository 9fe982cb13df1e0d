import type { Request, RequestHandler, Response } from 'express';

/**
 * Bodies are JSON. One sent as text/plain or form-encoded would otherwise reach the route as no body at all and be
 * answered "name is required, client is required, ...": the caller hears about the fields, not about the header.
 */
export const isJson = (req: Request): boolean => req.is(['application/json', 'application/*+json']) !== false;

function hasBody(req: Request): boolean {
  const length = req.get('content-length');
  return (length !== undefined && length !== '0') || req.get('transfer-encoding') !== undefined;
}

export function wrongContentType(res: Response, req: Request): void {
  const given = req.get('content-type');
  res.status(400).json({
    error: 'invalid request',
    detail: `the body must be JSON sent as Content-Type: application/json${given ? `, not ${given}` : ' (the header is missing)'}`,
    issues: [{ field: 'content-type', reason: `must be application/json${given ? `; got ${given.split(';')[0]!.trim()}` : '; none was given'}` }],
  });
}

/** Before the JSON parser: a body of another type is a 400 that says which header is wrong. A bodiless POST passes. */
export function requireJsonBody(): RequestHandler {
  return (req, res, next) => {
    if (!hasBody(req) || isJson(req)) return next();
    wrongContentType(res, req);
  };
}

/**
 * express.json's `verify`: a body of only whitespace is not JSON, though the parser would take it for `{}` and the
 * caller would hear about missing fields instead.
 */
export function refuseBlankJson(_req: unknown, _res: unknown, buf: Buffer): void {
  if (buf.length > 0 && buf.toString('utf8').trim() === '') {
    throw Object.assign(new Error('the body is blank'), { status: 400, type: 'entity.parse.failed' });
  }
}
