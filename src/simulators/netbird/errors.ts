/**
 * How the simulated management server refuses a request: the HTTP status NetBird's `util.WriteError` maps its
 * status types to (InvalidArgument → 422, NotFound → 404, AlreadyExists → 409, ...) and NetBird's own message.
 */
export class NetbirdStatusError extends Error {
  override readonly name = 'NetbirdStatusError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export const notFound = (message: string) => new NetbirdStatusError(404, message);
/** NetBird's `status.InvalidArgument`: the body parsed, but its content is not acceptable. */
export const invalidArgument = (message: string) => new NetbirdStatusError(422, message);
export const alreadyExists = (message: string) => new NetbirdStatusError(409, message);
export const badRequest = (message: string) => new NetbirdStatusError(400, message);

export type EnrollmentRefusal = 'unknown' | 'revoked' | 'expired' | 'overused';

/** A booting VM's `netbird up --setup-key` was refused by management: the peer does not appear. */
export class NetbirdEnrollmentError extends Error {
  override readonly name = 'NetbirdEnrollmentError';
  constructor(
    readonly reason: EnrollmentRefusal,
    readonly hostname: string,
  ) {
    // Never the key itself: it is a credential.
    super(`peer ${hostname} could not register: setup key is ${reason === 'unknown' ? 'invalid' : reason}`);
  }
}
