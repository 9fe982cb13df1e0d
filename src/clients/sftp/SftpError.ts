/**
 * What went wrong talking SFTP to a node, in the terms an activity needs to decide what to do next:
 * `retryable` says whether trying again later can help; the message says what an operator should check.
 */
export type SftpErrorKind = 'host-key-mismatch' | 'auth' | 'connect' | 'timeout' | 'permission' | 'io';

export interface SftpErrorInit {
  kind: SftpErrorKind;
  retryable: boolean;
  host: string;
  port: number;
  path?: string;
  cause?: unknown;
}

export class SftpError extends Error {
  readonly kind: SftpErrorKind;
  readonly retryable: boolean;
  readonly host: string;
  readonly port: number;
  readonly path?: string;

  constructor(message: string, init: SftpErrorInit) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = 'SftpError';
    this.kind = init.kind;
    this.retryable = init.retryable;
    this.host = init.host;
    this.port = init.port;
    if (init.path !== undefined) this.path = init.path;
  }
}
