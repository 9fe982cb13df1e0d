/**
 * One catalogue of failure types, shared by activities (which raise them as `ApplicationFailure.type`) and
 * workflows (whose retry policies list the non-retryable ones). A string union, never class names: class names do
 * not survive bundling and minification.
 */
export const ErrorType = {
  /** Proxmox refused a parameter (400): no retry can fix the request. */
  PveInvalidParameter: 'PveInvalidParameter',
  /** The API token lacks a privilege (403) or was refused (401). */
  PvePermissionDenied: 'PvePermissionDenied',
  /** The configured template VM is missing, not a template, or outside the pool. */
  PveTemplateMissing: 'PveTemplateMissing',
  /** A Proxmox task ended with an error that retrying the same call will not fix. */
  PveTaskFailed: 'PveTaskFailed',
  /** A VMID we meant to use holds a VM that pveflow did not create for this request: never touch it. */
  PveVmidTaken: 'PveVmidTaken',
  /** No online node can take the VM (selector, capacity). */
  PveNoNodeAvailable: 'PveNoNodeAvailable',
  /** Every address of PVE_IP_POOL is leased (or excluded). */
  IpPoolExhausted: 'IpPoolExhausted',
  /** A coordinator workflow (clone slots, address pool) is not running: the workers start it at start-up. */
  CoordinatorMissing: 'CoordinatorMissing',
  /** Retryable: a config/storage lock timeout, a locked VM, a proxy error (595/596), a transport failure. */
  PveTransient: 'PveTransient',
  /** The SFTP endpoint's host key is not the pinned one. */
  SshHostKeyMismatch: 'SshHostKeyMismatch',
  /** SFTP to a node failed in a way retrying will not fix (authentication, permission). */
  SftpFailed: 'SftpFailed',
  /** SFTP to a node failed in a way that may pass (connection, timeout). */
  SftpTransient: 'SftpTransient',
  /** NetBird refused the request (4xx other than 429). */
  NetbirdRejected: 'NetbirdRejected',
  /** Retryable NetBird failure (429, 5xx, timeout). */
  NetbirdTransient: 'NetbirdTransient',
  /** A bounded wait (guest agent IP, NetBird peer) ran out. */
  WaitTimedOut: 'WaitTimedOut',
  /** The request's own data is inconsistent (e.g. consultants unknown and the policy says fail). */
  InvalidRequest: 'InvalidRequest',
} as const;

export type ErrorType = (typeof ErrorType)[keyof typeof ErrorType];

/** Failure types that no retry can fix; activity retry policies list these as non-retryable. */
export const nonRetryableErrorTypes: ErrorType[] = [
  ErrorType.PveInvalidParameter,
  ErrorType.PvePermissionDenied,
  ErrorType.PveTemplateMissing,
  ErrorType.PveTaskFailed,
  ErrorType.PveVmidTaken,
  ErrorType.PveNoNodeAvailable,
  ErrorType.IpPoolExhausted,
  ErrorType.CoordinatorMissing,
  ErrorType.SshHostKeyMismatch,
  ErrorType.SftpFailed,
  ErrorType.NetbirdRejected,
  ErrorType.InvalidRequest,
];
