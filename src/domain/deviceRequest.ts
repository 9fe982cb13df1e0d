import { z } from 'zod';
import { cloudInitChoicesSchema } from './cloudInitChoices';
import { imageNameSchema } from './imageCatalogue';
import { networkChoiceSchema } from './networks';
import { requestLimits } from './requestLimits';

/**
 * A VM request as pveflow keeps it in its workflow: the shape every edge (HTTP API, webhook) is parsed into. Only
 * plain JSON, never a secret: it travels in workflow history.
 *
 * The rules of each field are stated here once. The API's wire shape (snake_case, with its defaults, examples and
 * descriptions) is derived from `requestFields` by renaming (src/contracts/requestWire.ts), so a rule changed here changes
 * what the API checks and what its OpenAPI document says.
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

/**
 * An address as mail systems take it: zod's email syntax, within RFC 5321's lengths (at most 254 characters, a local
 * part of at most 64, domain labels of at most 63 that neither start nor end with a hyphen). Looser addresses would be
 * accepted here and refused by the first mail server, NetBird user lookup or validator that reads them. The pattern
 * is written into the OpenAPI document too: `format` alone lets each validator apply its own idea of an email.
 */
const EMAIL = /^(?=.{1,254}$)(?=[^@]{1,64}@)(?:[A-Za-z0-9_'+-]+\.)*[A-Za-z0-9_'+-]*[A-Za-z0-9_+-]@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$/;

export const emailSchema = (example?: string) => z.email({ pattern: EMAIL }).meta({ pattern: EMAIL.source, ...(example ? { example } : {}) });

export const orgSchema = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]*$/, 'letters, digits, space, . _ - only')
  .meta({ description: 'The client organisation the VM is for.', example: 'Acme Corp' });

/**
 * An ISO 8601 date-time with its offset, in the years 2000 to 2100 as written (the calendar's own rules, leap days
 * included, in the pattern): beyond, a date is no lease, and one past 9999 in UTC (`9999-12-31T23:00:00-05:00`) is
 * no date JavaScript or Temporal can hold. A pattern, not a refinement, so that the OpenAPI document states the bound
 * and a client's validator checks it.
 */
export const DATE_TIME_YEARS = { min: 2000, max: 2100 } as const;
export const DATE_TIME_PATTERN =
  /^(?:20(?:[02468][048]|[13579][26])-02-29|(?:20\d\d|2100)-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)|02-(?:0[1-9]|1\d|2[0-8])))T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d+)?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$/;

/** Examples lie years ahead, so that the policy (an end in the future, a start not long past) takes a copied one. */
export const dateTimeSchema = (example: string) =>
  z
    .string()
    .regex(DATE_TIME_PATTERN, `must be an ISO 8601 date-time with its offset, in the years ${DATE_TIME_YEARS.min} to ${DATE_TIME_YEARS.max}, e.g. ${example}`)
    // No `format: date-time` beside the pattern: a generator (schemathesis) would make any date-time of the format and
    // filter it through the pattern, keeping almost none; the pattern says all the format would.
    .meta({ example, pattern: DATE_TIME_PATTERN.source });

/** Who asks, for whom, when and what: the fields a submission carries (a class and the serial are given by pveflow). */
export const requestFields = {
  name: vmNameSchema.meta({ example: 'kali' }),
  org: orgSchema,
  requester: emailSchema('rita@acme.example'),
  consultants: z.array(emailSchema('alice@consultancy.example')).min(1, 'name at least one consultant').max(50),
  // The rules between the two dates are the request policy's (requestPolicyRules), checked at intake and by the workflow.
  period: z.strictObject({ start: dateTimeSchema('2030-06-03T09:00:00Z'), end: dateTimeSchema('2030-06-17T18:00:00Z') }),
  /** The catalogue image the VM is built from (domain/imageCatalogue); absent: the default template. */
  image: imageNameSchema.optional(),
  /** The template the build clones: the image's, resolved at intake (absent: PVE_TEMPLATE_VMID). Not on the wire. */
  templateVmid: z.number().int().min(100).max(999_999_999).optional(),
  /**
   * The image's template on each node, when it has one per node (an import onto storage local to each node): the build
   * is placed on a node that holds one and clones that node's. Resolved at intake, not on the wire.
   */
  imageTemplates: z
    .array(z.object({ node: z.string().min(1).max(64), vmid: z.number().int().min(100).max(999_999_999) }))
    .max(64)
    .optional(),
  cores: z.number().int().min(requestLimits.cores.min).max(requestLimits.cores.max),
  memoryMiB: z.number().int().min(requestLimits.memoryMiB.min).max(requestLimits.memoryMiB.max),
  /** Grow the boot disk to this size (never shrinks: Proxmox cannot). */
  diskGiB: z.number().int().min(requestLimits.diskGiB.min).max(requestLimits.diskGiB.max).optional(),
  fullClone: z.boolean().optional(),
  sshKeys: z.array(sshPublicKeySchema.max(16_384)).max(20),
  /** The bridge/VLAN of the VM's first NIC, from the allowed list (PVE_NETWORKS); absent: PVE_BRIDGE / PVE_VLAN. */
  network: networkChoiceSchema.optional(),
  /** Packages, commands, files and a cloud-config fragment, merged under pveflow's own user-data. */
  cloudInit: cloudInitChoicesSchema.optional(),
};

export type RequestFields = { [K in keyof typeof requestFields]: z.infer<(typeof requestFields)[K]> };

/** One of a class: N identical VMs asked for together (a lab, an event), each its own request. */
export const classSizeSchema = z.number().int().min(2, 'a class has at least 2 VMs (submit one VM as a device request)').max(50, 'at most 50 VMs per class');

export const classMembershipSchema = z.object({ id: classIdSchema, index: z.number().int().min(1).max(50), size: classSizeSchema });

export const deviceRequestSchema = z
  .object({
    serial: serialSchema,
    ...requestFields,
    // Domain objects built in code and tests (not from the wire) may leave the keys out.
    sshKeys: requestFields.sshKeys.default([]),
    class: classMembershipSchema.optional(),
  })
  .refine((r) => Date.parse(r.period.end) > Date.parse(r.period.start), {
    path: ['period', 'end'],
    message: 'must be after period.start',
    // The policy's name for it (requestPolicyRules), should a request reach this far without the policy's check.
    params: { rule: 'end-before-start' },
  });

export type DeviceRequest = z.infer<typeof deviceRequestSchema>;
