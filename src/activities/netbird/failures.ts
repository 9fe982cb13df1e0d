import { ApplicationFailure } from '@temporalio/activity';
import { NetbirdApiError } from '../../clients/netbird';
import { ErrorType } from '../../errors';

/** A refusal no retry can change (4xx other than 429, or an answer pveflow cannot read). */
export function isFinalRefusal(err: unknown): err is NetbirdApiError {
  return err instanceof NetbirdApiError && !err.retryable;
}

/** What an operator does about a final refusal, by what NetBird answered. */
function advice(err: NetbirdApiError): string {
  if (err.status === 401) return 'NetBird refused the token: create a new personal access token and set NETBIRD_TOKEN.';
  if (err.status === 403) return "The token's NetBird user may not do this: give it the admin role.";
  return 'Check the object in NetBird; retrying the same call will not help.';
}

/** A NetBird error as a Temporal failure: 429/5xx/timeouts retried by the activity's policy, other 4xx final. */
export function netbirdFailure(err: unknown, serial: string, doing: string): ApplicationFailure {
  const message = `${doing} for request ${serial}: ${err instanceof Error ? err.message : String(err)}`;
  if (isFinalRefusal(err)) {
    return ApplicationFailure.create({ type: ErrorType.NetbirdRejected, nonRetryable: true, message: `${message}. ${advice(err)}` });
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
