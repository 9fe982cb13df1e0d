/**
 * The three ways a PVE handler fails (pve-common `PVE/Exception.pm`, pve-http-server `Formatter/Standard.pm`):
 * a plain `die "msg\n"` (500), a parameter exception (400 with per-parameter `errors`) and a permission exception
 * (403). The HTTP layer turns them into PVE's envelope; inside a task worker the same errors become `TASK ERROR`.
 */
export class PveError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly errors?: Record<string, string>,
  ) {
    super(message);
    this.name = 'PveError';
  }
}

/** `die "msg\n"` in a handler: HTTP 500, reason phrase = the message. */
export function pveDie(message: string): PveError {
  return new PveError(500, message);
}

/** `raise_param_exc`: HTTP 400 `Parameter verification failed.` with the per-parameter texts. */
export function paramError(errors: Record<string, string>): PveError {
  return new PveError(400, 'Parameter verification failed.', errors);
}

/** `raise_perm_exc`: the detail names path and privilege for simple checks; `or` checks give a bare message. */
export function permissionError(detail?: string): PveError {
  return new PveError(403, detail ? `Permission check failed (${detail})` : 'Permission check failed');
}

/** How PVE's `die` inside a worker ends up in the task log: the exception stringified on one line. */
export function taskErrorText(err: unknown): string {
  if (err instanceof PveError) {
    if (err.status === 400 && err.errors) {
      const details = Object.entries(err.errors).map(([k, v]) => `${k}: ${v}`);
      return [`400 ${err.message}`, ...details]
        .join(' ')
        .replace(/\s*\n\s*/g, ' ')
        .trim();
    }
    return err.message.replace(/\s*\n\s*/g, ' ').trim();
  }
  if (err instanceof Error) return err.message.replace(/\s*\n\s*/g, ' ').trim();
  return String(err);
}

export function lockTimeoutText(vmid: number): string {
  return `can't lock file '/var/lock/qemu-server/lock-${vmid}.conf' - got timeout`;
}

export function configMissingText(node: string, vmid: number): string {
  return `Configuration file 'nodes/${node}/qemu-server/${vmid}.conf' does not exist`;
}

export function configNotFoundOnNodeText(node: string, vmid: number): string {
  return `unable to find configuration file for VM ${vmid} on node '${node}'`;
}
