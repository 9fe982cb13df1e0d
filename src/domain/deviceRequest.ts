import { z } from 'zod';
import { requestLimits } from './requestLimits';

/**
 * A VM request as pveflow keeps it in its workflow: the shape every edge (HTTP API, webhook) is parsed into. Only
 * plain JSON, never a secret: it travels in workflow history.
 */
export const serialSchema = z.string().regex(/^VM-[0-9A-Z]{5}$/, 'must look like VM-XXXXX');

export const classIdSchema = z.string().regex(/^CL-[0-9A-Z]{5}$/, 'must look like CL-XXXXX');

/** A DNS label: what Proxmox accepts as a VM name and cloud-init as a hostname. */
export const vmNameSchema = z
  .string()
  .min(1)
  .max(requestLimits.nameLength)
  .regex(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/, 'lower-case letters, digits and inner hyphens only (a DNS label)');

/** One line of an authorized_keys file: the key types cloud-init and OpenSSH take. */
export const sshPublicKeySchema = z.string().regex(/^(ssh-(ed25519|rsa)|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+( \S.*)?$/, 'not an OpenSSH public key');

export const deviceRequestSchema = z
  .object({
    serial: serialSchema,
    name: vmNameSchema,
    org: z.string().min(1).max(64).regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]*$/, 'letters, digits, space, . _ -'),
    requester: z.email(),
    consultants: z.array(z.email()).min(1).max(50),
    period: z.object({ start: z.iso.datetime({ offset: true }), end: z.iso.datetime({ offset: true }) }),
    templateVmid: z.number().int().min(100).max(999_999_999).optional(),
    cores: z.number().int().min(1).max(64),
    memoryMiB: z.number().int().min(512).max(262_144),
    /** Grow the boot disk to this size (never shrinks: Proxmox cannot). */
    diskGiB: z.number().int().min(1).max(16_384).optional(),
    fullClone: z.boolean().optional(),
    /** One of a class: N identical VMs asked for together (a lab, an event), each its own request. */
    class: z.object({ id: classIdSchema, index: z.number().int().min(1).max(50), size: z.number().int().min(2).max(50) }).optional(),
    sshKeys: z.array(sshPublicKeySchema).max(20).default([]),
  })
  .refine((r) => Date.parse(r.period.end) > Date.parse(r.period.start), {
    path: ['period', 'end'],
    message: 'must be after period.start',
  });

export type DeviceRequest = z.infer<typeof deviceRequestSchema>;
