import { z } from 'zod';
import type { ChoiceRule } from './choiceRules';

/**
 * What a request may add to the guest's first boot: extra packages, extra `runcmd`, `write_files` and a fragment of
 * cloud-config. pveflow's own user-data (hostname, the generated logins, the guest agent, the NetBird enrolment) is
 * not the requester's to change: the keys that carry it are refused here, and the merge (userDataMerge.ts) lets
 * pveflow's values win over anything that got past. Field names inside are cloud-init's own, so that what a user
 * knows from cloud-init's documentation is what they write.
 *
 * The bounds here are hard ones (what a workflow input may carry); the configured limits (CLOUD_INIT_MAX_*) are
 * checked at intake (choiceLimits.ts).
 */

export const cloudInitHardLimits = {
  packages: 200,
  runcmd: 200,
  writeFiles: 50,
  /** One command or one argument. */
  commandLength: 4096,
  /** One file's content, as sent (base64 counts as sent). */
  fileBytes: 64 * 1024,
  /** The cloud-config fragment as YAML text. */
  fragmentBytes: 64 * 1024,
} as const;

/** A Debian/Ubuntu or RPM package name, optionally pinned (`nginx`, `python3-pip`, `htop=3.2.2-2`). */
export const packageNameSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[a-z0-9][a-z0-9+._-]*(=[A-Za-z0-9.+~:_-]+)?$/, 'a package name (letters, digits, + . _ -), optionally =version');

const noNul = (s: string) => !s.includes('\0');
// A pattern rather than a refinement: the OpenAPI document then states it, and a client's validator checks it.
const commandPart = z
  .string()
  .min(1)
  .max(cloudInitHardLimits.commandLength)
  .regex(/^[^\0]*$/, 'must not contain a NUL character');

/** As cloud-init takes it: a shell line (`"echo hi"`) or an argument vector (`["systemctl", "enable", "nginx"]`). */
export const commandSchema = z.union([commandPart, z.array(commandPart).min(1).max(64)]);

/**
 * Paths whose files carry pveflow's logins, the guest agent, the NetBird enrolment or cloud-init itself: a file
 * written there could lock the generated logins out (a broken sudoers or PAM file locks out everyone), stop the
 * agent the build waits on, or change what cloud-init runs.
 */
export const protectedPathPrefixes = [
  '/etc/passwd',
  '/etc/shadow',
  '/etc/group',
  '/etc/gshadow',
  '/etc/sudoers',
  '/etc/pam.d/',
  '/etc/security/',
  '/etc/ssh/',
  '/root/.ssh/',
  '/etc/cloud/',
  '/var/lib/cloud/',
  '/etc/netbird/',
  '/var/lib/netbird/',
  '/etc/qemu/',
  '/etc/default/qemu-guest-agent',
  '/etc/systemd/system/qemu-guest-agent',
  '/etc/systemd/system/netbird',
  '/etc/systemd/system/ssh',
] as const;

export function protectedPath(path: string): string | undefined {
  return protectedPathPrefixes.find((p) => path.startsWith(p));
}

const filePathSchema = z
  .string()
  .min(2)
  .max(1024)
  .regex(/^\/[^\0]*[^/]$/, 'an absolute path to a file')
  .refine((p) => !p.split('/').some((part) => part === '..' || part === '.') && !p.includes('//'), { message: 'no . or .. segments, no //', params: { rule: 'path-not-normalised' satisfies ChoiceRule } })
  .superRefine((p, ctx) => {
    const hit = protectedPath(p);
    if (hit)
      ctx.addIssue({ code: 'custom', message: `${hit} is pveflow's: it carries the generated logins, the guest agent, the VPN enrolment or cloud-init itself`, params: { rule: 'protected-path' satisfies ChoiceRule } });
  })
  .meta({
    description:
      'An absolute file path. Refused with 400 naming the field and the `rule`: a . or .. segment, or // (path-not-normalised); a path under ' +
      `pveflow's own files (protected-path): ${protectedPathPrefixes.join(', ')}.`,
  });

export const writeFileSchema = z.strictObject({
  path: filePathSchema,
  content: z.string().max(cloudInitHardLimits.fileBytes).default(''),
  /** cloud-init's names: `b64` for base64, `text/plain` (the default) for text. */
  encoding: z.enum(['b64', 'text/plain']).optional(),
  owner: z
    .string()
    .regex(/^[a-z_][a-z0-9_-]{0,31}(:[a-z_][a-z0-9_-]{0,31})?$/, 'user or user:group')
    .optional(),
  permissions: z
    .string()
    .regex(/^0?[0-7]{3,4}$/, "an octal mode as a string, e.g. '0644'")
    .optional(),
  append: z.boolean().optional(),
  /** Written at the end of the boot, after the packages are installed (and their users exist). */
  defer: z.boolean().optional(),
});

export type WriteFile = z.infer<typeof writeFileSchema>;

/**
 * pveflow's keys, with why a fragment may not set them: answered as a 400 naming `cloud_init.cloud_config.<key>`.
 */
export const pveflowKeys: Record<string, string> = {
  hostname: "pveflow's key: the hostname is the request's (its NetBird name depends on it)",
  fqdn: "pveflow's key: the hostname is the request's (its NetBird name depends on it)",
  prefer_fqdn_over_hostname: "pveflow's key: the hostname is the request's (its NetBird name depends on it)",
  manage_etc_hosts: "pveflow's key: /etc/hosts names the request's hostname",
  users: "pveflow's key: the users are the generated logins (add SSH keys with ssh_keys)",
  user: "pveflow's key: the users are the generated logins",
  chpasswd: "pveflow's key: the passwords are the generated logins",
  password: "pveflow's key: the passwords are the generated logins",
  ssh_pwauth: "pveflow's key: password logins over SSH stay off",
  ssh_authorized_keys: "pveflow's key: give SSH keys with ssh_keys",
  disable_root: "pveflow's key: the generated root login",
  packages: 'use cloud_init.packages: they are installed after the guest agent',
  runcmd: "use cloud_init.runcmd: it runs after pveflow's own commands",
  write_files: 'use cloud_init.write_files',
  package_update: "pveflow's key: the package lists are updated to install the guest agent",
  power_state: 'refused: powering off or rebooting at first boot stops the guest agent the build waits on',
  package_reboot_if_required: 'refused: a reboot at first boot stops the guest agent the build waits on',
  merge_how: 'refused: pveflow merges the fragment into its own user-data itself',
  merge_type: 'refused: pveflow merges the fragment into its own user-data itself',
};

const host = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/, 'a host name or address');
const proxyUrl = z.url({ protocol: /^https?$/ }).max(1024);
const shortText = (max: number) => z.string().min(1).max(max).refine(noNul, 'must not contain a NUL character');

/**
 * The cloud-config keys a fragment may carry, each in the shape cloud-init's schema gives it: only what is known to
 * pass `cloud-init schema` and cannot touch pveflow's part of the guest. Anything else is refused, naming the key.
 */
export const fragmentKeySchemas = {
  timezone: z
    .string()
    .regex(/^[A-Za-z0-9_+-]+(\/[A-Za-z0-9_+-]+)*$/, 'a tz database name, e.g. Europe/Paris')
    .max(64),
  locale: z
    .string()
    .regex(/^[A-Za-z0-9_.@-]+$/, 'a locale, e.g. en_GB.UTF-8')
    .max(64),
  keyboard: z.strictObject({
    layout: z
      .string()
      .regex(/^[a-z0-9_,-]+$/)
      .max(64),
    model: z
      .string()
      .regex(/^[a-z0-9_-]+$/)
      .max(64)
      .optional(),
    variant: z
      .string()
      .regex(/^[a-z0-9_,-]*$/)
      .max(64)
      .optional(),
    options: z
      .string()
      .regex(/^[a-z0-9_:,-]*$/)
      .max(256)
      .optional(),
  }),
  package_upgrade: z.boolean(),
  ntp: z.strictObject({ enabled: z.boolean().optional(), servers: z.array(host).min(1).max(10).optional(), pools: z.array(host).min(1).max(10).optional() }),
  ca_certs: z.strictObject({
    remove_defaults: z.boolean().optional(),
    trusted: z
      .array(
        z
          .string()
          .max(16 * 1024)
          .regex(/^-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----\s*$/, 'a PEM certificate'),
      )
      .min(1)
      .max(20),
  }),
  apt: z.strictObject({ proxy: proxyUrl.optional(), http_proxy: proxyUrl.optional(), https_proxy: proxyUrl.optional() }),
  mounts: z
    .array(z.array(shortText(256)).min(1).max(6))
    .min(1)
    .max(20),
  swap: z.strictObject({
    filename: z
      .string()
      .regex(/^\/[A-Za-z0-9._/-]+$/, 'an absolute path')
      .max(256)
      .optional(),
    size: z.union([z.literal('auto'), z.number().int().min(0), z.string().regex(/^\d+[KMG]?$/)]).optional(),
    maxsize: z.union([z.number().int().min(0), z.string().regex(/^\d+[KMG]?$/)]).optional(),
  }),
  final_message: shortText(1024),
} satisfies Record<string, z.ZodType>;

export const fragmentKeys = Object.keys(fragmentKeySchemas) as Array<keyof typeof fragmentKeySchemas>;

/** A cloud-config fragment, already parsed from YAML: a mapping of the keys above (nothing else passes). */
export const cloudConfigFragmentSchema = z
  .record(z.string(), z.unknown())
  .superRefine((fragment, ctx) => {
    for (const [key, value] of Object.entries(fragment)) {
      if (key in pveflowKeys) {
        ctx.addIssue({ code: 'custom', path: [key], message: pveflowKeys[key]!, params: { rule: 'pveflow-key' satisfies ChoiceRule } });
        continue;
      }
      const schema = (fragmentKeySchemas as Record<string, z.ZodType>)[key];
      if (!schema) {
        ctx.addIssue({ code: 'custom', path: [key], message: `not a key pveflow passes on to cloud-init; allowed: ${fragmentKeys.join(', ')}`, params: { rule: 'cloud-config-key' satisfies ChoiceRule } });
        continue;
      }
      const parsed = schema.safeParse(value);
      if (!parsed.success) {
        for (const issue of parsed.error.issues) {
          ctx.addIssue({ code: 'custom', path: [key, ...issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))], message: issue.message, params: { rule: 'cloud-config-value' satisfies ChoiceRule } });
        }
      }
    }
  })
  // Any JSON value per key, as far as the document goes: the keys and their shapes are the allowlist's, stated here.
  .meta({
    additionalProperties: true,
    description:
      `A cloud-config mapping of these keys only: ${fragmentKeys.join(', ')}, each in the shape cloud-init's schema gives it. Refused with 400 ` +
      "naming the key and the `rule`: a key that carries pveflow's own user-data (pveflow-key): " +
      `${Object.keys(pveflowKeys).join(', ')}; any other key not listed (cloud-config-key); a value not in its key's shape (cloud-config-value).`,
  });

export const cloudInitChoicesSchema = z.strictObject({
  packages: z.array(packageNameSchema).min(1).max(cloudInitHardLimits.packages).optional(),
  runcmd: z.array(commandSchema).min(1).max(cloudInitHardLimits.runcmd).optional(),
  write_files: z.array(writeFileSchema).min(1).max(cloudInitHardLimits.writeFiles).optional(),
  cloud_config: cloudConfigFragmentSchema.optional(),
});

export type CloudInitChoices = z.infer<typeof cloudInitChoicesSchema>;
