/**
 * The limits of a request's fields, in one place: the API's schemas enforce them at submission and at a resize (a
 * reconfigure: the update's own check too, src/contracts/operationArguments.ts), and the console's form and the
 * CLI say them before anything is sent. Plain numbers (no zod) so that the console's bundle can carry them.
 */
export const requestLimits = {
  /** A VM name is a DNS label. */
  nameLength: 40,
  cores: { min: 1, max: 64 },
  memoryMiB: { min: 512, max: 262_144 },
  /** The boot disk; the deployment's REQUEST_MAX_DISK_GIB bounds it further (domain/choiceLimits.ts). */
  diskGiB: { min: 1, max: 16_384 },
} as const;
