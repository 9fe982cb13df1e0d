import { ApplicationFailure } from '@temporalio/activity';
import { PveApiError } from '../../clients/pve';
import { ErrorType } from '../../errors';
import { grantAdvice } from '../../domain/pveflowPrivileges';

/** Who the failure is about, so that an operator reading it knows which request, VM and node. */
export interface Subject {
  serial: string;
  vmid?: number;
  node?: string;
}

export function describe(s: Subject): string {
  return [`request ${s.serial}`, s.vmid ? `VM ${s.vmid}` : undefined, s.node ? `node ${s.node}` : undefined].filter(Boolean).join(', ');
}

/**
 * What to grant, from Proxmox's `Permission check failed (<path>, <privileges>)`; Proxmox's bare `Permission check
 * failed` (a clone's VM.Allocate on neither the new VMID nor the pool) names nothing, so the call's `needs` do.
 */
export function permissionAdvice(pveMessage: string, needs?: string): string {
  const m = /Permission check failed \(([^,)]+), ([^)]+)\)/.exec(pveMessage);
  const pool = /pool '([^']+)' does not exist/.exec(pveMessage);
  if (pool) return `The pool ${pool[1]} does not exist: create it (pvesh create /pools --poolid ${pool[1]}) or set PVE_POOL to the pool pveflow's role is granted on (docs/operations.md).`;
  // `A|B` is Proxmox's "any of": granting the first is enough.
  if (m)
    return grantAdvice(
      m[2]!
        .split(',')
        .map((p) => p.split('|')[0]!.trim())
        .filter(Boolean),
      m[1]!.trim(),
    );
  return (
    `Proxmox did not say which privilege is missing${needs ? `; this call needs ${needs}` : ''}: grant what the token lacks through the ` +
    `PVEflow role, to both the token and its user (docs/operations.md lists the role and where to grant it; pveflow doctor names what is missing).`
  );
}

/**
 * Turns a Proxmox client error into a Temporal failure an operator can act on: retryable ones (locks, proxy,
 * transport) are left to the retry policy; the rest fail at once with what to do.
 */
export function pveFailure(err: unknown, s: Subject, doing: string, needs?: string): ApplicationFailure {
  if (!(err instanceof PveApiError)) {
    return ApplicationFailure.create({ type: ErrorType.PveTransient, message: `${doing} for ${describe(s)}: ${String(err)}`, cause: asError(err) });
  }
  const what = `${doing} for ${describe(s)}: Proxmox said "${err.pveMessage || err.message}"`;
  switch (err.errorClass) {
    case 'param':
      return ApplicationFailure.create({
        type: ErrorType.PveInvalidParameter,
        nonRetryable: true,
        message: `${what}. The request pveflow sent was refused; check the template and the request's settings.`,
        details: [err.errors],
      });
    case 'notImplemented':
      return ApplicationFailure.create({
        type: ErrorType.PveInvalidParameter,
        nonRetryable: true,
        message: `${what}. This Proxmox VE version does not offer the call pveflow needs; check GET /version against the supported releases.`,
      });
    case 'permission':
      return ApplicationFailure.create({ type: ErrorType.PvePermissionDenied, nonRetryable: true, message: `${what}. ${permissionAdvice(err.pveMessage || err.message, needs)} Then rebuild.` });
    case 'auth':
      return ApplicationFailure.create({ type: ErrorType.PvePermissionDenied, nonRetryable: true, message: `${what}. Check PVE_TOKEN_ID and PVE_TOKEN_SECRET (pveflow doctor says what is wrong), then rebuild.` });
    default:
      return ApplicationFailure.create({ type: ErrorType.PveTransient, message: what, cause: err });
  }
}

function asError(e: unknown): Error | undefined {
  return e instanceof Error ? e : undefined;
}
