import { z } from 'zod';
import type { ChoiceRule } from './choiceRules';

/**
 * What a request may add to the guest's first boot: extra packages, extra `runcmd`, `write_files` and a fragment of
 * cloud-config. pveflow's own user-data (hostname, the generated logins, the guest agent, the NetBird enrolment) is
 * not the requester's to change: the keys and the places a request may add to are allowlists here, and the merge
 * (userDataMerge.ts) applies them again, pveflow's values winning, to anything that got past. Field names inside are cloud-init's own, so that what a user
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
 * Where a requester's files may go: the places an application's files live, which neither the boot, nor the logins,
 * nor OpenSSH, the guest agent, NetBird or cloud-init read. An allowlist: a place not named here is refused, so that
 * a path nobody thought of (a unit, a profile script, a Python module cloud-init imports, a binary earlier on PATH
 * than the one pveflow calls) is refused too. An entry ending in / is a directory (anything under it), any other is
 * one file. A service of the request's own is written under /opt and enabled from runcmd, which runs after
 * pveflow's steps (`systemctl enable --now /opt/app/app.service`).
 */
export const writablePaths = [
  '/etc/motd',
  '/etc/issue',
  '/etc/apt/sources.list.d/',
  '/etc/apt/keyrings/',
  '/etc/apt/trusted.gpg.d/',
  '/home/',
  '/opt/',
  '/srv/',
  '/var/www/',
  '/var/opt/',
  '/usr/local/share/',
  '/usr/local/etc/',
  '/tmp/',
] as const;

/**
 * Whose the files under these paths are, for the reason of a refusal: what a file written there would break (the
 * generated logins, the agent the build waits on, the VPN enrolment, cloud-init, the boot). Refused because they are
 * off the allowlist (or, for `.ssh`, inside it); listed so that the refusal says why.
 */
export const protectedPaths: Array<{ owner: string; prefixes: string[] }> = [
  {
    owner: 'the logins (a broken sudoers or PAM file locks out every login, the generated ones included)',
    prefixes: ['/etc/passwd', '/etc/shadow', '/etc/group', '/etc/gshadow', '/etc/sudoers', '/etc/pam.d/', '/etc/security/', '/etc/login.defs', '/etc/nsswitch.conf'],
  },
  { owner: "OpenSSH's (the generated logins' keys and the server's configuration)", prefixes: ['/etc/ssh/', '/root/.ssh/', '/usr/sbin/sshd', '/etc/systemd/system/ssh'] },
  { owner: "the guest agent's (the build waits on it)", prefixes: ['/etc/qemu/', '/etc/default/qemu-guest-agent', '/usr/sbin/qemu-ga', '/etc/systemd/system/qemu-guest-agent'] },
  { owner: "NetBird's (the VPN enrolment: its binary receives the setup key)", prefixes: ['/etc/netbird/', '/var/lib/netbird/', '/usr/local/bin/netbird', '/usr/bin/netbird', '/etc/systemd/system/netbird'] },
  { owner: "cloud-init's (what it runs at this boot and the next)", prefixes: ['/etc/cloud/', '/var/lib/cloud/'] },
  {
    owner: "the boot chain's (the kernel, the boot loader, what is mounted and started; a unit of the request's own goes under /opt/, enabled from runcmd)",
    prefixes: ['/boot/', '/etc/default/grub', '/etc/fstab', '/etc/crypttab', '/etc/initramfs-tools/', '/etc/kernel/', '/etc/modprobe.d/', '/etc/systemd/', '/usr/lib/systemd/', '/lib/systemd/'],
  },
];

/** Why a requester may not write `path` (already normalised), or undefined when it may. */
export function writeFileRefusal(path: string): { rule: 'protected-path' | 'path-not-allowed'; reason: string } | undefined {
  const owned = protectedPaths.find((o) => o.prefixes.some((p) => path.startsWith(p)));
  if (owned) return { rule: 'protected-path', reason: `${path} is pveflow's to keep: the files there are ${owned.owner}` };
  // Anyone's SSH keys, wherever their home: OpenSSH reads them at every login.
  if (path.split('/').includes('.ssh')) return { rule: 'protected-path', reason: `${path} is pveflow's to keep: the files under .ssh are OpenSSH's (the generated logins' keys)` };
  const allowed = writablePaths.some((w) => (w.endsWith('/') ? path.startsWith(w) : path === w));
  if (!allowed) return { rule: 'path-not-allowed', reason: `not a place a request may write to; allowed: ${writablePaths.join(', ')} (an entry ending in / is a directory)` };
  return undefined;
}

const filePathSchema = z
  .string()
  .min(2)
  .max(1024)
  .regex(/^\/[^\0]*[^/]$/, 'an absolute path to a file')
  .refine((p) => !p.split('/').some((part) => part === '..' || part === '.') && !p.includes('//'), { message: 'no . or .. segments, no //', params: { rule: 'path-not-normalised' satisfies ChoiceRule }, abort: true })
  .superRefine((p, ctx) => {
    const refused = writeFileRefusal(p);
    if (refused) ctx.addIssue({ code: 'custom', message: refused.reason, params: { rule: refused.rule satisfies ChoiceRule } });
  })
  .meta({
    description:
      'An absolute file path. Refused with 400 naming the field and the `rule`: a . or .. segment, or // (path-not-normalised); a path under ' +
      `pveflow's own files (protected-path): ${protectedPaths.flatMap((o) => o.prefixes).join(', ')}, or a .ssh directory; any path off the allowlist ` +
      `(path-not-allowed): ${writablePaths.join(', ')} (an entry ending in / is a directory).`,
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

/**
 * Keys a fragment may not carry although they are not pveflow's own: why, for the refusal (rule cloud-config-key).
 * Any key off the allowlist below is refused; these say why.
 */
export const refusedKeys: Record<string, string> = {
  swap: "cloud-init makes the swap file at swap.filename, whatever is there: pveflow's logins or keys included",
  mounts: "a mount can lie over pveflow's files: a tmpfs over /etc/ssh hides the generated logins' keys",
  bootcmd: "it runs at every boot, before pveflow's steps: use cloud_init.runcmd",
  // Both were allowed until a real Debian 12 guest showed them ending cloud-init in `error` (guardrails-real-guest
  // test): they need packages the image does not carry and a mirror the guest may not reach.
  keyboard:
    "on pveflow's Debian guests cloud-init's keyboard module restarts console-setup, which the image does not carry, and cloud-init ends in error: set the layout from runcmd (localectl set-x11-keymap) or in your own image",
  locale:
    "on pveflow's Debian guests cloud-init's locale module cannot generate a locale that is not already in /etc/locale.gen (Debian's locale-gen ignores the one asked for), and cloud-init ends in error: generate it from runcmd or in your own image",
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
  package_upgrade: z.boolean(),
  ntp: z.strictObject({ enabled: z.boolean().optional(), servers: z.array(host).min(1).max(10).optional(), pools: z.array(host).min(1).max(10).optional() }),
  ca_certs: z.strictObject({
    // Only false: `true` empties the guest's CA bundle before runcmd, and pveflow's NetBird install and enrolment
    // (https to pkgs.netbird.io and to the management URL) then cannot verify a public server.
    remove_defaults: z.literal(false, "only false: true removes the public CAs that pveflow's NetBird install and enrolment verify their https servers with (add yours with trusted)").optional(),
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
  final_message: shortText(1024),
} satisfies Record<string, z.ZodType>;

export const fragmentKeys = Object.keys(fragmentKeySchemas) as Array<keyof typeof fragmentKeySchemas>;

/** Why a fragment's key is refused, with its rule, or undefined for a key on the allowlist. */
function fragmentKeyRefusal(key: string): { rule: ChoiceRule; reason: string } | undefined {
  // Own properties only: `constructor` or `toString` is a key like any other, not the prototype's function.
  if (Object.hasOwn(pveflowKeys, key)) return { rule: 'pveflow-key', reason: pveflowKeys[key]! };
  if (Object.hasOwn(fragmentKeySchemas, key)) return undefined;
  const why = Object.hasOwn(refusedKeys, key) ? ` (${refusedKeys[key]})` : '';
  return { rule: 'cloud-config-key', reason: `not a key pveflow passes on to cloud-init${why}; allowed: ${fragmentKeys.join(', ')}` };
}

/**
 * A cloud-config fragment, already parsed from YAML: a mapping of the keys above (nothing else passes). Its keys are
 * checked on the input as received: a record's output is built by assignment, which would drop a JSON `__proto__`
 * key without a word.
 */
export const cloudConfigFragmentSchema = z
  .preprocess(
    (fragment, ctx) => {
      if (typeof fragment !== 'object' || fragment === null || Array.isArray(fragment)) return fragment;
      for (const [key, value] of Object.entries(fragment)) {
        const refused = fragmentKeyRefusal(key);
        if (refused) {
          ctx.addIssue({ code: 'custom', path: [key], message: refused.reason, params: { rule: refused.rule }, input: value });
          continue;
        }
        const parsed = (fragmentKeySchemas as Record<string, z.ZodType>)[key]!.safeParse(value);
        if (!parsed.success) {
          for (const issue of parsed.error.issues) {
            ctx.addIssue({
              code: 'custom',
              path: [key, ...issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))],
              message: issue.message,
              params: { rule: 'cloud-config-value' satisfies ChoiceRule },
              input: value,
            });
          }
        }
      }
      return fragment;
    },
    z.record(z.string(), z.unknown()),
  )
  // Any JSON value per key, as far as the document goes: the keys and their shapes are the allowlist's, stated here.
  .meta({
    additionalProperties: true,
    description:
      `A cloud-config mapping of these keys only: ${fragmentKeys.join(', ')}, each in the shape cloud-init's schema gives it. Refused with 400 ` +
      "naming the key and the `rule`: a key that carries pveflow's own user-data (pveflow-key): " +
      `${Object.keys(pveflowKeys).join(', ')}; any other key not listed (cloud-config-key), among them ${Object.keys(refusedKeys).join(', ')}; a value not in its key's shape (cloud-config-value).`,
  });

export const cloudInitChoicesSchema = z.strictObject({
  packages: z.array(packageNameSchema).min(1).max(cloudInitHardLimits.packages).optional(),
  runcmd: z.array(commandSchema).min(1).max(cloudInitHardLimits.runcmd).optional(),
  write_files: z.array(writeFileSchema).min(1).max(cloudInitHardLimits.writeFiles).optional(),
  cloud_config: cloudConfigFragmentSchema.optional(),
});

export type CloudInitChoices = z.infer<typeof cloudInitChoicesSchema>;
