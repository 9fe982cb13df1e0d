import { ApplicationFailure } from '@temporalio/activity';
import { PveApiError } from '../../clients/pve';
import { ErrorType } from '../../errors';

/** Who the failure is about, so that an operator reading it knows which request, VM and node. */
export interface Subject {
  serial: string;
  vmid?: number;
  node?: string;
}

export function describe(s: Subject): string {
  return [`request ${s.serial}`, s.vmid ? `VM ${s.vmid}` : undefined, s.node ? `node ${s.node}` : undefined]
    .filter(Boolean)
    .join(', ');
}

/**
 * Turns a Proxmox client error into a Temporal failure an operator can act on: retryable ones (locks, proxy,
 * transport) are left to the retry policy; the rest fail at once with what to do.
 */
export function pveFailure(err: unknown, s: Subject, doing: string): ApplicationFailure {
  if (!(err instanceof PveApiError)) {
    return ApplicationFailure.create({ type: ErrorType.PveTransient, message: `${doing} for ${describe(s)}: ${String(err)}`, cause: asError(err) });
  }
  const what = `${doing} for ${describe(s)}: Proxmox said "${err.pveMessage || err.message}"`;
  switch (err.errorClass) {
    case 'param':
      return ApplicationFailure.create({ type: ErrorType.PveInvalidParameter, nonRetryable: true, message: `${what}. The request pveflow sent was refused; check the template and the request's settings.`, details: [err.errors] });
    case 'notImplemented':
      return ApplicationFailure.create({ type: ErrorType.PveInvalidParameter, nonRetryable: true, message: `${what}. This Proxmox VE version does not offer the call pveflow needs; check GET /version against the supported releases.` });
    case 'permission':
    case 'auth':
      return ApplicationFailure.create({ type: ErrorType.PvePermissionDenied, nonRetryable: true, message: `${what}. Grant the API token the missing privilege (see docs: token and pool ACLs), then rebuild.` });
    default:
      return ApplicationFailure.create({ type: ErrorType.PveTransient, message: what, cause: err });
  }
}

function asError(e: unknown): Error | undefined {
  return e instanceof Error ? e : undefined;
}
