import { z } from 'zod';
import { createClassBody, createDeviceRequestBody, idempotencyHeaders, IDEMPOTENCY_HEADER, listQuery, orgSchema, rejectBody } from '../contracts/apiSchemas';
import { requestStatuses } from '../contracts/types';
import { vmNameSchema } from '../domain/deviceRequest';
import { usageError } from './cliError';
import { imageNameSchema } from '../domain/imageCatalogue';
import { bridgeNameSchema } from '../domain/networks';
import { packageNameSchema } from '../domain/cloudInitChoices';

/**
 * What a flag's value must be, checked before anything is sent (exit 2, as the help promises). The rules are the
 * API's own schemas, so the CLI never refuses what the API would take nor sends what it would refuse.
 */
export function checked<T>(flag: string, value: string, schema: z.ZodType<T>): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const reason = parsed.error.issues[0]?.message ?? 'invalid';
  throw usageError(`--${flag} ${JSON.stringify(value)}: ${reason}`);
}

/** A whole number within the API's bounds for the field; `what` says what the number counts. */
export function wholeNumber(flag: string, value: string, bounds: { min: number; max: number }, what = ''): number {
  if (!/^-?\d+$/.test(value)) throw usageError(`--${flag} must be a whole number${what ? ` (${what})` : ''}, not "${value}"`);
  const n = Number(value);
  if (n < bounds.min || n > bounds.max) throw usageError(`--${flag} must be ${bounds.min}-${bounds.max}${what ? ` (${what})` : ''}, not ${value}`);
  return n;
}

/** The bounds of a numeric body field, read from the API's schema so that the two cannot drift apart. */
function boundsOf(schema: z.ZodType): { min: number; max: number } {
  let inner: z.ZodType = schema;
  while (inner instanceof z.ZodDefault || inner instanceof z.ZodOptional) inner = inner.unwrap() as z.ZodType;
  const n = inner as z.ZodNumber;
  return { min: n.minValue ?? Number.MIN_SAFE_INTEGER, max: n.maxValue ?? Number.MAX_SAFE_INTEGER };
}

export const bounds = {
  cores: boundsOf(createDeviceRequestBody.shape.cores),
  memoryMiB: boundsOf(createDeviceRequestBody.shape.memory_mib),
  diskGiB: boundsOf(createDeviceRequestBody.shape.disk_gib),
  vlan: { min: 1, max: 4094 },
  count: boundsOf(createClassBody.shape.count),
  pageSize: { min: 1, max: 100 },
};

export const flagSchemas = {
  name: vmNameSchema,
  className: vmNameSchema.max(37, 'at most 37 characters: each VM gets a -NN suffix'),
  org: orgSchema,
  email: z.email('must be an email address'),
  status: z.enum(requestStatuses, { message: `must be one of ${requestStatuses.join(', ')}` }),
  reason: rejectBody.shape.reason,
  note: z.string().max(2000, 'at most 2000 characters'),
  idempotencyKey: idempotencyHeaders.shape[IDEMPOTENCY_HEADER].unwrap(),
  pageToken: listQuery.shape.page_token.unwrap(),
  image: imageNameSchema,
  bridge: bridgeNameSchema,
  package: packageNameSchema,
};
