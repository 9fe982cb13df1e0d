import type { ParseArgsConfig } from 'node:util';

/**
 * Every flag the CLI knows, parsed in one strict pass (a misspelt flag is a usage error, never a silently ignored
 * one). Which command takes which flag is checked after parsing, by each command's `flags` list.
 */
export const optionSpec = {
  // Everywhere
  'api-url': { type: 'string' },
  'api-key': { type: 'string' },
  timeout: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  // requests list
  org: { type: 'string' },
  status: { type: 'string' },
  from: { type: 'string' },
  to: { type: 'string' },
  'page-size': { type: 'string' },
  'page-token': { type: 'string' },
  // requests new (consultant doubles as the list filter)
  file: { type: 'string' },
  name: { type: 'string' },
  client: { type: 'string' },
  requester: { type: 'string' },
  consultant: { type: 'string', multiple: true },
  start: { type: 'string' },
  end: { type: 'string' },
  cores: { type: 'string' },
  'memory-mib': { type: 'string' },
  image: { type: 'string' },
  'disk-gib': { type: 'string' },
  bridge: { type: 'string' },
  vlan: { type: 'string' },
  package: { type: 'string', multiple: true },
  runcmd: { type: 'string', multiple: true },
  'write-file': { type: 'string', multiple: true },
  'cloud-config': { type: 'string' },
  'full-clone': { type: 'boolean' },
  'linked-clone': { type: 'boolean' },
  'ssh-key': { type: 'string', multiple: true },
  // classes new
  count: { type: 'string' },
  'idempotency-key': { type: 'string' },
  // actions
  note: { type: 'string' },
  reason: { type: 'string' },
  'new-end': { type: 'string' },
  // logs
  follow: { type: 'boolean', short: 'f' },
  // vm (day-2 operations; vm resize shares --disk-gib with requests new)
  'confirm-reboot': { type: 'boolean' },
  'with-ram': { type: 'boolean' },
  description: { type: 'string' },
  target: { type: 'string' },
  // images (the catalogue; --name, --description shared with the commands above)
  os: { type: 'string' },
  url: { type: 'string' },
  checksum: { type: 'string' },
  'checksum-algorithm': { type: 'string' },
  volume: { type: 'string' },
  node: { type: 'string' },
  'download-storage': { type: 'string' },
  'disk-storage': { type: 'string' },
  'min-cores': { type: 'string' },
  'min-memory-mib': { type: 'string' },
  'min-disk-gib': { type: 'string' },
  orgs: { type: 'string' },
  'all-orgs': { type: 'boolean' },
  wait: { type: 'boolean' },
  // keys create (--name and --org shared with requests new / list)
  role: { type: 'string' },
  email: { type: 'string' },
  expires: { type: 'string' },
  // login
  loopback: { type: 'boolean' },
  'loopback-port': { type: 'string' },
  'open-browser': { type: 'boolean' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

export type Flag = keyof typeof optionSpec;

export type FlagValues = {
  [K in Flag]?: (typeof optionSpec)[K] extends { type: 'boolean' } ? boolean : (typeof optionSpec)[K] extends { multiple: true } ? string[] : string;
};

export const globalFlags: readonly Flag[] = ['api-url', 'api-key', 'timeout', 'json', 'help'];
