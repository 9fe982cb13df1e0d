/**
 * What went wrong in a Proxmox call, classified the way an orchestrator must react to it
 * (proxmox-behaviour.md §8.2). The message always names the call and what Proxmox said.
 */
export type PveErrorClass =
  | 'param' // 400 Parameter verification failed
  | 'permission' // 403
  | 'auth' // 401
  | 'notFound' // "does not exist", "unable to find configuration file"
  | 'locked' // "VM is locked (clone)"
  | 'lockTimeout' // "can't lock file ... got timeout", "got lock request timeout"
  | 'alreadyExists' // VMID collisions
  | 'agentNotRunning' // "QEMU guest agent is not running"
  | 'notRunning'
  | 'alreadyRunning'
  | 'quorum'
  | 'proxy' // 595-599: node unreachable through the cluster proxy
  | 'transport' // no HTTP answer at all (timeout, refused, TLS)
  | 'notImplemented' // 501: this PVE version has no such call (or the request broke an HTTP rule)
  | 'other';

export interface PveErrorInit {
  method: string;
  path: string;
  status?: number;
  reason?: string;
  message?: string;
  errors?: Record<string, string>;
  cause?: unknown;
}

const RETRYABLE: ReadonlySet<PveErrorClass> = new Set(['locked', 'lockTimeout', 'proxy', 'transport', 'quorum']);

export class PveApiError extends Error {
  override readonly name = 'PveApiError';
  readonly method: string;
  readonly path: string;
  readonly status: number | undefined;
  /** What Proxmox said, in its own words (reason phrase, else body message). */
  readonly pveMessage: string;
  readonly errors: Record<string, string>;
  readonly errorClass: PveErrorClass;

  constructor(init: PveErrorInit) {
    const pveMessage = (init.reason || init.message || '').trim();
    const errors = init.errors ?? {};
    const detail = Object.entries(errors)
      .map(([k, v]) => `${k}: ${v.trim()}`)
      .join('; ');
    const said = [init.status ? `${init.status} ${pveMessage}` : pveMessage, detail].filter(Boolean).join(' — ');
    super(`Proxmox ${init.method} ${init.path} failed: ${said || 'no answer'}`, { cause: init.cause });
    this.method = init.method;
    this.path = init.path;
    this.status = init.status;
    this.pveMessage = [pveMessage, detail].filter(Boolean).join(' — ');
    this.errors = errors;
    this.errorClass = classify(init.status, `${pveMessage}\n${init.message ?? ''}\n${detail}`);
  }

  get retryable(): boolean {
    return RETRYABLE.has(this.errorClass);
  }
}

export function classify(status: number | undefined, text: string): PveErrorClass {
  if (status === undefined) return 'transport';
  if (status >= 595 && status <= 599) return 'proxy';
  if (status === 401) return 'auth';
  if (status === 403) return 'permission';
  if (status === 501 || status === 506) return 'notImplemented';
  if (/already exists|config file already exists|File exists/i.test(text)) return 'alreadyExists';
  if (status === 400) return 'param';
  return classifyText(text);
}

/** Also used for task exit statuses, which carry the same texts as HTTP errors. */
export function classifyText(text: string): PveErrorClass {
  if (/got timeout|got lock request timeout|locked command timed out/i.test(text)) return 'lockTimeout';
  if (/VM is locked/i.test(text)) return 'locked';
  if (/already exists|config file already exists|File exists/i.test(text)) return 'alreadyExists';
  if (/guest agent is not running|qga command .* failed - got timeout/i.test(text)) return 'agentNotRunning';
  if (/does not exist|unable to find configuration file/i.test(text)) return 'notFound';
  if (/already running/i.test(text)) return 'alreadyRunning';
  if (/not running/i.test(text)) return 'notRunning';
  if (/no quorum/i.test(text)) return 'quorum';
  if (/^400 Parameter verification failed/i.test(text)) return 'param';
  return 'other';
}
