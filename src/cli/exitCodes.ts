/**
 * What `pveflow` exits with. Scripts branch on these, so they never change meaning: a new kind of failure gets a
 * new number rather than borrowing one.
 */
export const exitCodes = {
  ok: 0,
  /** The API refused: bad input (400), the workflow's state does not allow it (409), any other 4xx; a build that failed. */
  refused: 1,
  /** Bad flags or arguments: nothing was sent. */
  usage: 2,
  /** No API key, an unknown one (401), or one not allowed to do this (403). */
  auth: 3,
  /** No such request, or one of another org (404). */
  notFound: 4,
  /** The API is unreachable, answered 5xx, or did not answer in time. */
  unavailable: 5,
} as const;

export type ExitCode = (typeof exitCodes)[keyof typeof exitCodes];

/** The exit code an HTTP status stands for. */
export function exitCodeForStatus(status: number): ExitCode {
  if (status < 400) return exitCodes.ok;
  if (status === 401 || status === 403) return exitCodes.auth;
  if (status === 404) return exitCodes.notFound;
  if (status < 500) return exitCodes.refused;
  return exitCodes.unavailable;
}
