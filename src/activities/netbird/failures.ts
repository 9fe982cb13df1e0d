import { ApplicationFailure } from '@temporalio/activity';
import { NetbirdApiError } from '../../clients/netbird';
import { ErrorType } from '../../errors';

/** A NetBird error as a Temporal failure: 429/5xx/timeouts retried by the activity's policy, other 4xx final. */
export function netbirdFailure(err: unknown, serial: string, doing: string): ApplicationFailure {
  const message = `${doing} for request ${serial}: ${err instanceof Error ? err.message : String(err)}`;
  if (err instanceof NetbirdApiError && !err.retryable) {
    return ApplicationFailure.create({
      type: ErrorType.NetbirdRejected,
      nonRetryable: true,
      message: `${message}. Check the NetBird token's permissions and the account's state.`,
    });
  }
  return ApplicationFailure.create({ type: ErrorType.NetbirdTransient, message, cause: err instanceof Error ? err : undefined });
}

/** Run a NetBird step, turning its error into an operator-readable failure. */
export async function step<T>(serial: string, doing: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw netbirdFailure(err, serial, doing);
  }
}
