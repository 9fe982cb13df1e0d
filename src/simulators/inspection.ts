import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseEnv } from 'node:util';

/**
 * The simulated world, open to inspection: its endpoints, tokens (the pool-scoped one pveflow uses and a root one),
 * CA file and SFTP host keys in one file, rewritten at every start, readable only by its owner. It is a shell
 * environment file (single-quoted values) that also parses as a dotenv file, so a person sources it and pokes the
 * simulators with curl, and `pveflow doctor` reads it when no real cluster is configured.
 */
export const WORLD_ACCESS_FILE = 'credentials.env';

/** Where the embedded default (`npm start`, DATA_DIR) keeps its simulated world's access file. */
export function embeddedWorldAccessFile(dataDir: string): string {
  return join(dataDir, 'sim', WORLD_ACCESS_FILE);
}

/** The settings a client of the world needs; the names are the ones pveflow itself reads (README, "A real cluster"). */
export interface WorldAccess {
  PVE_ENDPOINT: string;
  PVE_TOKEN_ID: string;
  PVE_TOKEN_SECRET: string;
  PVE_ROOT_TOKEN_ID: string;
  PVE_ROOT_TOKEN_SECRET: string;
  PVE_CA_FILE: string;
  PVE_POOL: string;
  PVE_TEMPLATE_VMID: string;
  PVE_SNIPPETS_DIR: string;
  SSH_USER: string;
  SSH_PRIVATE_KEY_FILE: string;
  SSH_NODES: string;
  SSH_HOST_FINGERPRINTS: string;
  NETBIRD_API_URL: string;
  NETBIRD_TOKEN: string;
  NETBIRD_CA_FILE: string;
}

/** The settings the Proxmox side of a doctor run or a worker takes from the file; the rest are NetBird's. */
export const PVE_ACCESS_KEYS = [
  'PVE_ENDPOINT',
  'PVE_TOKEN_ID',
  'PVE_TOKEN_SECRET',
  'PVE_CA_FILE',
  'PVE_POOL',
  'PVE_TEMPLATE_VMID',
  'PVE_SNIPPETS_DIR',
  'SSH_USER',
  'SSH_PRIVATE_KEY_FILE',
  'SSH_NODES',
  'SSH_HOST_FINGERPRINTS',
] as const;
export const NETBIRD_ACCESS_KEYS = ['NETBIRD_API_URL', 'NETBIRD_TOKEN', 'NETBIRD_CA_FILE'] as const;

export function writeWorldAccessFile(file: string, access: WorldAccess): void {
  for (const [key, value] of Object.entries(access)) {
    // Single quotes keep every character literal in a shell and in a dotenv parser alike, except a quote or a newline.
    if (/['\n\r]/.test(value)) throw new Error(`${key} (${JSON.stringify(value)}) holds a quote or a line break: move DATA_DIR to a path without one`);
  }
  const v = (key: keyof WorldAccess) => `${key}='${access[key]}'`;
  const text = [
    "# pveflow's simulated world (the embedded default of `npm start`), rewritten at every start. It holds secrets.",
    '# In a shell:   set -a; . ' + file + '; set +a',
    '#   curl --cacert "$PVE_CA_FILE" -H "Authorization: PVEAPIToken=$PVE_TOKEN_ID=$PVE_TOKEN_SECRET" "$PVE_ENDPOINT/api2/json/cluster/resources"',
    '#   curl --cacert "$NETBIRD_CA_FILE" -H "Authorization: Token $NETBIRD_TOKEN" "$NETBIRD_API_URL/api/peers"',
    '#   pveflow doctor     (with no PVE_ENDPOINT set it checks this world, read from this file)',
    '# The simulators answer only while `npm start` runs.',
    '',
    '# Proxmox VE: the token pveflow uses (privilege-separated, scoped to the pool) and a root@pam token (everything).',
    v('PVE_ENDPOINT'),
    v('PVE_TOKEN_ID'),
    v('PVE_TOKEN_SECRET'),
    v('PVE_ROOT_TOKEN_ID'),
    v('PVE_ROOT_TOKEN_SECRET'),
    "# The CA the simulators' HTTPS certificates are signed by (curl --cacert, PVE_CA_FILE, NETBIRD_CA_FILE).",
    v('PVE_CA_FILE'),
    v('PVE_POOL'),
    v('PVE_TEMPLATE_VMID'),
    v('PVE_SNIPPETS_DIR'),
    '# SFTP to each node (sftp -i "$SSH_PRIVATE_KEY_FILE" -P <port> root@127.0.0.1) and each node\'s host key fingerprint.',
    v('SSH_USER'),
    v('SSH_PRIVATE_KEY_FILE'),
    v('SSH_NODES'),
    v('SSH_HOST_FINGERPRINTS'),
    "# NetBird management API: a personal access token of the account's owner.",
    v('NETBIRD_API_URL'),
    v('NETBIRD_TOKEN'),
    v('NETBIRD_CA_FILE'),
    '',
  ].join('\n');
  writeFileSync(file, text, { mode: 0o600 });
  chmodSync(file, 0o600); // writeFileSync's mode applies only to a file it creates
}

/** The file's settings, or undefined when there is no such file. */
export function readWorldAccessFile(file: string): Partial<WorldAccess> | undefined {
  if (!existsSync(file)) return undefined;
  return parseEnv(readFileSync(file, 'utf8')) as Partial<WorldAccess>;
}
