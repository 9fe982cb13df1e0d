/**
 * A NetBird management API call that failed, in the words an operator needs: which operation, what NetBird said,
 * and whether trying again can help. Never carries the token or a setup key (NetBird's messages name ids only, and
 * the client redacts its own token from anything it quotes).
 */
export interface NetbirdApiErrorInit {
  /** `METHOD /api/path/{template}`, e.g. `DELETE /api/groups/{groupId}`. */
  operation: string;
  /** The concrete path (ids only, never secrets), e.g. `/api/groups/ch8i4ug6lnn4g9hqv7m0`. */
  path: string;
  /** Undefined when no HTTP answer came (timeout, refused connection, TLS). */
  status?: number;
  netbirdMessage: string;
  attempts: number;
  /** Seconds NetBird asked us to wait (Retry-After), when it did. */
  retryAfterSeconds?: number;
  cause?: unknown;
}

export class NetbirdApiError extends Error {
  override readonly name = 'NetbirdApiError';
  readonly operation: string;
  readonly path: string;
  readonly status: number | undefined;
  readonly netbirdMessage: string;
  readonly attempts: number;
  readonly retryAfterSeconds: number | undefined;

  constructor(init: NetbirdApiErrorInit) {
    const said = init.status === undefined ? `no answer (${init.netbirdMessage})` : `${init.status} ${init.netbirdMessage}`;
    const tries = init.attempts > 1 ? ` after ${init.attempts} attempts` : '';
    super(`NetBird ${init.operation.split(' ')[0]} ${init.path} failed${tries}: ${said}`, { cause: init.cause });
    this.operation = init.operation;
    this.path = init.path;
    this.status = init.status;
    this.netbirdMessage = init.netbirdMessage;
    this.attempts = init.attempts;
    this.retryAfterSeconds = init.retryAfterSeconds;
  }

  /** 429, any 5xx, or no answer at all: the same call may succeed later. Every other 4xx will not. */
  get retryable(): boolean {
    return isRetryableStatus(this.status);
  }

  get notFound(): boolean {
    return this.status === 404;
  }
}

export function isRetryableStatus(status: number | undefined): boolean {
  return status === undefined || status === 429 || status >= 500;
}
