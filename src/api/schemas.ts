import { z } from 'zod';
import { serialSchema, vmNameSchema } from '../domain/deviceRequest';

/**
 * The HTTP API's bodies. Field names are the wire's (snake_case); `toDeviceRequest` maps them to the domain. Every
 * body is strict: an unknown field is a mistake the caller should hear about, not a silently ignored setting.
 */
export const createDeviceRequestBody = z.strictObject({
  name: vmNameSchema,
  client: z.string().min(1).max(64).regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]*$/, 'letters, digits, space, . _ - only'),
  requester: z.email(),
  consultants: z.array(z.email()).min(1, 'name at least one consultant').max(50),
  period: z.strictObject({
    start: z.iso.datetime({ offset: true, message: 'must be an ISO 8601 date-time, e.g. 2026-12-01T09:00:00Z' }),
    end: z.iso.datetime({ offset: true, message: 'must be an ISO 8601 date-time, e.g. 2026-12-15T18:00:00Z' }),
  }),
  template_vmid: z.number().int().min(100).max(999_999_999).optional(),
  cores: z.number().int().min(1).max(64).default(2),
  memory_mib: z.number().int().min(512).max(262_144).default(2048),
  full_clone: z.boolean().optional(),
  ssh_keys: z.array(z.string().max(16_384)).max(20).default([]),
}).refine((b) => Date.parse(b.period.end) > Date.parse(b.period.start), { path: ['period', 'end'], message: 'must be after period.start' });

export type CreateDeviceRequestBody = z.infer<typeof createDeviceRequestBody>;

export const actorBody = z.strictObject({
  by: z.string().min(1).max(200).default('api'),
  note: z.string().max(2000).optional(),
});

export const rejectBody = z.strictObject({
  by: z.string().min(1).max(200).default('api'),
  reason: z.string().min(1, 'say why the request is rejected').max(2000),
});

export const serialParam = z.strictObject({ serial: serialSchema });
