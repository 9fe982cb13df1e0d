import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { faultSetSchema, type FaultClass, type Faults } from './faults';

/**
 * The simulator's control endpoint, outside `/api2` so that no Proxmox client can reach it by accident: switch
 * faults at run time and read or save the cluster state. It exists only when a control token was configured;
 * every call must carry `Authorization: Bearer <token>`.
 *
 *   GET    /_sim/faults            active faults
 *   POST   /_sim/faults            add faults (JSON body: the same object `sim.faults.set()` takes)
 *   DELETE /_sim/faults[?kind=k]   clear all faults, or one class
 *   GET    /_sim/state             the state dump (`sim.dump()`)
 *   POST   /_sim/state/save        write the dump to the configured state file; answers its path
 */
export const CONTROL_PREFIX = '/_sim';

export interface ControlOptions {
  /** The shared secret of the control endpoint. */
  token: string;
  /** Writes the state dump somewhere (the standalone server's `--state-out`) and returns where. */
  saveState?(): string;
}

const kindSchema = z.enum(Object.keys(faultSetSchema.shape) as [FaultClass, ...FaultClass[]]);

export async function handleControl(control: ControlOptions, faults: Faults, dump: () => unknown, req: IncomingMessage, url: URL, body: Buffer, res: ServerResponse): Promise<void> {
  if (!authorized(control.token, req.headers.authorization)) return send(res, 401, { error: 'control token missing or wrong' });
  const route = `${req.method ?? 'GET'} ${url.pathname.replace(/\/+$/, '')}`;
  switch (route) {
    case 'GET /_sim/faults':
      return send(res, 200, { data: faults.list() });
    case 'POST /_sim/faults': {
      let json: unknown;
      try {
        json = JSON.parse(body.toString('utf8') || '{}');
      } catch {
        return send(res, 400, { error: 'body is not JSON' });
      }
      const parsed = faultSetSchema.safeParse(json);
      if (!parsed.success) return send(res, 400, { error: 'invalid fault set', issues: parsed.error.issues });
      faults.set(parsed.data);
      return send(res, 200, { data: faults.list() });
    }
    case 'DELETE /_sim/faults': {
      const kind = url.searchParams.get('kind');
      if (kind === null) faults.clear();
      else {
        const k = kindSchema.safeParse(kind);
        if (!k.success) return send(res, 400, { error: `unknown fault class '${kind}'` });
        faults.clear(k.data);
      }
      return send(res, 200, { data: faults.list() });
    }
    case 'GET /_sim/state':
      return send(res, 200, { data: dump() });
    case 'POST /_sim/state/save':
      if (!control.saveState) return send(res, 409, { error: 'no state file configured (start with --state-out)' });
      return send(res, 200, { data: { path: control.saveState() } });
    default:
      return send(res, 404, { error: `no control route '${route}'` });
  }
}

function authorized(token: string, header: string | undefined): boolean {
  const m = /^Bearer (.+)$/.exec(header ?? '');
  if (!m) return false;
  const a = Buffer.from(m[1]!);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json;charset=UTF-8');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  res.end(text);
}
