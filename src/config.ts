import { z } from 'zod';
import { sftpDefaultTimeoutMs } from './clients/sftp/defaults';
import type { RequestPolicy } from './domain/requestPolicy';
import { policyDefaults } from './domain/requestPolicyRules';
import { poolSize, type AddressPoolSpec } from './domain/addressPool';
import { inRanges, parseIpv4, parseRangeList, parseSubnet, subnetRange } from './domain/ipv4';
import { quotaConfigSchema } from './domain/quotas';
import { OPERATION_WAIT_DEFAULT_MS } from './contracts/vmOperationSchemas';

/**
 * Every environment variable pveflow reads, parsed once at start-up. Secrets are kept here and handed to the
 * clients that need them; they never enter a workflow's input, a log line or an API response.
 */

const bool = z.enum(['true', 'false', '1', '0', 'yes', 'no']).transform((v) => v === 'true' || v === '1' || v === 'yes');

const commaList = z.string().transform((s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean),
);

/** `pve1=10.0.0.11:22,pve2=10.0.0.12` → { pve1: {host, port} } */
const nodeAddressMap = z.string().transform((s, ctx) => {
  const out: Record<string, { host: string; port: number }> = {};
  for (const entry of s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)) {
    const m = /^([A-Za-z0-9][A-Za-z0-9.-]*)=([^:=\s]+)(?::(\d+))?$/.exec(entry);
    if (!m) {
      ctx.addIssue({ code: 'custom', message: `'${entry}' is not node=host[:port]` });
      return z.NEVER;
    }
    out[m[1]!] = { host: m[2]!, port: m[3] ? Number(m[3]) : 22 };
  }
  return out;
});

/** `pve1=SHA256:abc,pve2=SHA256:def` → { pve1: 'SHA256:abc' } */
const nodeFingerprintMap = z.string().transform((s, ctx) => {
  const out: Record<string, string> = {};
  for (const entry of s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean)) {
    const m = /^([A-Za-z0-9][A-Za-z0-9.-]*)=(SHA256:[A-Za-z0-9+/]+={0,2})$/.exec(entry);
    if (!m) {
      ctx.addIssue({ code: 'custom', message: `'${entry}' is not node=SHA256:<fingerprint>` });
      return z.NEVER;
    }
    out[m[1]!] = m[2]!;
  }
  return out;
});

export const configSchema = z.object({
  NODE_ENV: z.string().default('development'),
  DATA_DIR: z.string().default('.data'),
  LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error']).default('info'),

  // Encrypted payloads (AES-256-GCM). Without either, the embedded default generates a key file under DATA_DIR.
  /** `id1:base64key,id2:base64key`, the first one encrypts; the others still decrypt (rotation). */
  PVEFLOW_CODEC_KEYS: z.string().min(1).optional(),
  PVEFLOW_CODEC_KEY_FILE: z.string().min(1).optional(),
  /**
   * Where the per-request keys that seal guest credentials live (crypto-shredding): a directory the API and every
   * worker share, and nothing else. Default: `<DATA_DIR>/credential-keys`.
   */
  CREDENTIAL_KEYS_DIR: z.string().min(1).optional(),
  /**
   * Temporal UI's origin as operators' browsers reach it (the gateway behind your proxy): the only origin the API's
   * /codec answers, and an `https` one marks the gateway's session cookie Secure. Default: the gateway's own address.
   */
  PVEFLOW_UI_ORIGIN: z.url().optional(),

  // Temporal. Without TEMPORAL_ADDRESS the embedded default starts a dev server.
  TEMPORAL_ADDRESS: z.string().optional(),
  TEMPORAL_NAMESPACE: z.string().default('default'),
  TEMPORAL_TASK_QUEUE: z.string().default('pveflow'),
  TEMPORAL_PORT: z.coerce.number().int().positive().default(7233),
  /** Where operators open Temporal UI: pveflow's gateway, which signs operators in and decrypts (docs/operations.md). */
  TEMPORAL_UI_PORT: z.coerce.number().int().min(0).default(8233),
  /** A Temporal UI server for the gateway to front (the API alone; the embedded default uses the dev server's). */
  TEMPORAL_UI_URL: z.url().optional(),
  // How every pveflow process reaches a Temporal frontend of its own (docs/operations.md, "Who may reach Temporal"). The
  // names are those Temporal's CLI and SDKs read from the environment, so deploy/temporal's scripts, run with the same
  // variables, connect the same way.
  /** TLS to the frontend. Unset: on as soon as a CA, server name, client certificate or API key is given, as Temporal's CLI does. */
  TEMPORAL_TLS: bool.optional(),
  /** The CA the frontend's certificate is checked against (PEM); unset: the system's CAs (Temporal Cloud). */
  TEMPORAL_TLS_SERVER_CA_CERT_PATH: z.string().min(1).optional(),
  /** The name the frontend's certificate must carry, when it is not the host of TEMPORAL_ADDRESS. */
  TEMPORAL_TLS_SERVER_NAME: z.string().min(1).optional(),
  /** mTLS: this process's client certificate and its private key (PEM), both or neither. */
  TEMPORAL_TLS_CLIENT_CERT_PATH: z.string().min(1).optional(),
  TEMPORAL_TLS_CLIENT_KEY_PATH: z.string().min(1).optional(),
  /** An API key (Temporal Cloud), sent as a bearer token over TLS; or the file that holds it (a mounted secret). */
  TEMPORAL_API_KEY: z.string().min(1).optional(),
  TEMPORAL_API_KEY_FILE: z.string().min(1).optional(),
  /** Production refuses plaintext gRPC to TEMPORAL_ADDRESS; `true` accepts it, where the network alone keeps others out. */
  TEMPORAL_ALLOW_PLAINTEXT: bool.default(false),

  API_HOST: z.string().default('127.0.0.1'),
  API_PORT: z.coerce.number().int().min(0).default(3000),
  /** A JSON file `{"keys": [{"id", "role", "org"?, "email"?, "sha256"}]}`. */
  API_KEYS_FILE: z.string().min(1).optional(),
  /** The same JSON inline; entries may carry `key` (clear) instead of `sha256`, hashed on load. */
  API_KEYS: z.string().min(1).optional(),
  /** Shared secret of the webhook intake's HMAC-SHA256 signature. Unset: the intake is off (503). */
  WEBHOOK_SECRET: z.string().min(16, 'use at least 16 characters').optional(),
  /** Bound on every call the API makes to Temporal. */
  API_TEMPORAL_TIMEOUT_MS: z.coerce.number().int().positive().default(10_000),
  /** How long a day-2 call waits for its operation to end once accepted; past it: 202 with where the outcome appears. */
  API_OPERATION_WAIT_MS: z.coerce.number().int().positive().default(OPERATION_WAIT_DEFAULT_MS),
  /** How often a log stream asks the build for new lines. */
  API_LOG_POLL_MS: z.coerce.number().int().min(50).default(1_000),
  /** How often a quiet log stream sends a comment, so proxies keep it open. */
  API_SSE_HEARTBEAT_MS: z.coerce.number().int().min(100).default(15_000),
  /** Submissions being started at once; past it a submission is refused at once (503, nothing created). */
  API_MAX_STARTS_IN_FLIGHT: z.coerce.number().int().min(1).default(32),
  /** Log streams (SSE) one key may hold open at once, and all keys together; past either: 429 with Retry-After. */
  API_SSE_MAX_PER_KEY: z.coerce.number().int().min(1).default(8),
  API_SSE_MAX: z.coerce.number().int().min(1).default(256),
  /** Writes (POSTs) per key and minute, as a burst of that size refilled continuously; 0: no bound. Past it: 429. */
  API_WRITES_PER_MINUTE: z.coerce.number().int().min(0).default(300),

  // Proxmox VE. Without PVE_ENDPOINT the embedded default starts the simulated cluster.
  PVE_ENDPOINT: z.url().optional(),
  PVE_TOKEN_ID: z
    .string()
    .regex(/^[^@!\s]+@[^@!\s]+![A-Za-z][A-Za-z0-9.\-_]+$/, 'must look like user@realm!tokenname')
    .optional(),
  PVE_TOKEN_SECRET: z.string().optional(),
  PVE_CA_FILE: z.string().optional(),
  PVE_FINGERPRINT: z
    .string()
    .regex(/^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$/, 'must be the SHA-256 fingerprint as colon-separated hex')
    .optional(),
  PVE_INSECURE_SKIP_VERIFY: bool.default(false),
  PVE_POOL: z.string().default('pveflow'),
  PVE_VMID_RANGE: z
    .string()
    .regex(/^\d+-\d+$/, 'must be MIN-MAX, e.g. 10000-19999')
    .transform((s) => {
      const [min, max] = s.split('-').map(Number) as [number, number];
      return { min, max };
    })
    .refine((r) => r.min >= 100 && r.max >= r.min && r.max <= 999_999_999, 'must lie within 100-999999999, MIN <= MAX')
    .default({ min: 10000, max: 99999 }),
  PVE_TEMPLATE_VMID: z.coerce.number().int().min(100).default(9000),
  PVE_NODE_SELECTOR: commaList.optional(),
  PVE_BRIDGE: z.string().default('vmbr0'),
  /** VLAN tag for the VMs' first NIC (unset: untagged, as the template has it). */
  PVE_VLAN: z.coerce.number().int().min(1).max(4094).optional(),
  PVE_FULL_CLONE_DEFAULT: bool.default(false),
  /**
   * Clones at once per node and per storage, across every worker (0: no limit). Proxmox allocates disks under a
   * storage lock it waits on for 10 s only: a class of identical VMs cloned at once otherwise fails on it.
   */
  PVE_CLONE_LIMIT_PER_NODE: z.coerce.number().int().min(0).max(1000).default(4),
  PVE_CLONE_LIMIT_PER_STORAGE: z.coerce.number().int().min(0).max(1000).default(4),
  /** Static addresses for the VMs (`ipconfig0`) from this subnet, e.g. 10.20.30.0/24; unset: DHCP. Needs PVE_IP_GATEWAY. */
  PVE_IP_POOL: z.string().optional(),
  PVE_IP_GATEWAY: z.string().optional(),
  /** Addresses of PVE_IP_POOL never handed out (used outside pveflow): `10.20.30.5,10.20.30.10-10.20.30.20,10.20.30.64/28`. */
  PVE_IP_EXCLUDE: z.string().default(''),
  /** The storage full clones copy the template's disks to (unset: the template's own storage). */
  PVE_TARGET_STORAGE: z
    .string()
    .regex(/^[a-z][a-z0-9\-_.]*$/i, 'must be a Proxmox storage id')
    .optional(),
  /** Make each VM an HA resource (state started) after its start; needs Sys.Console on / for the token. */
  PVE_HA: bool.default(false),
  /** The HA group new HA resources join; setting it turns PVE_HA on. */
  PVE_HA_GROUP: z
    .string()
    .regex(/^[a-z][a-z0-9\-_.]*$/i, 'must be an HA group id')
    .optional(),
  PVE_SNIPPETS_STORAGE: z.string().default('local'),
  PVE_SNIPPETS_DIR: z.string().default('/var/lib/vz/snippets'),
  PVE_TIMEOUT_MS: z.coerce.number().int().positive().default(30_000),

  // SFTP to the nodes, host keys pinned.
  SSH_USER: z.string().default('root'),
  SSH_PRIVATE_KEY_FILE: z.string().optional(),
  SSH_NODES: nodeAddressMap.optional(),
  SSH_HOST_FINGERPRINTS: nodeFingerprintMap.optional(),
  /**
   * Bound on every SFTP call to a node, handshake included: a session that stalls (a node whose SSH hangs without
   * closing) fails its call within it, and the activity's retry opens a new one (docs/operations.md, "Network faults").
   */
  SSH_TIMEOUT_MS: z.coerce.number().int().positive().default(sftpDefaultTimeoutMs),

  // NetBird. Without NETBIRD_API_URL the embedded default starts the simulated NetBird.
  NETBIRD_API_URL: z.url().optional(),
  NETBIRD_TOKEN: z.string().optional(),
  NETBIRD_MANAGEMENT_URL: z.url().optional(),
  NETBIRD_CA_FILE: z.string().optional(),
  NETBIRD_SETUP_KEY_TTL_S: z.coerce.number().int().min(3600).default(86_400),
  NETBIRD_PEER_WAIT_S: z.coerce.number().int().positive().default(900),
  /** A consultant with no NetBird user: `report` it on the request and go on, or `fail` the build. */
  NETBIRD_MISSING_CONSULTANT: z.enum(['report', 'fail']).default('report'),
  NETBIRD_TIMEOUT_MS: z.coerce.number().int().positive().default(15_000),

  // The embedded default's simulated world (used only when PVE_ENDPOINT / NETBIRD_API_URL are unset).
  SIM_PVE_PORT: z.coerce.number().int().min(0).default(8006),
  SIM_NETBIRD_PORT: z.coerce.number().int().min(0).default(33073),
  /** realistic: task and boot durations like a real cluster; fast: for tests; zero: for benchmarks. */
  SIM_TIMING: z.enum(['realistic', 'fast', 'zero']).default('realistic'),

  // The request policy, fixed into each request when it is submitted.
  REQUEST_PENDING_EXPIRY_H: z.coerce.number().positive().default(72),
  REQUEST_MAX_LEASE_DAYS: z.coerce.number().positive().default(90),
  REQUEST_END_NOTICE_H: z.coerce.number().min(0).default(24),
  REQUEST_NOTICE_WEBHOOK_URL: z.url().optional(),
  AUTO_APPROVE_ORGS: commaList.default([]),
  AUTO_APPROVE_MAX_CORES: z.coerce.number().int().min(0).default(0),
  AUTO_APPROVE_MAX_MEMORY_MIB: z.coerce.number().int().min(0).default(0),
  /** Snapshots a request may hold at once (day-2 operations). */
  REQUEST_SNAPSHOT_LIMIT: z.coerce.number().int().min(0).default(policyDefaults.snapshotLimit),
  /** What a shutdown (day-2, or the cleanup's) or reboot gives the guest before pveflow stops it. */
  REQUEST_SHUTDOWN_TIMEOUT_S: z.coerce.number().int().positive().max(3600).default(policyDefaults.shutdownTimeoutSeconds),
  // The image catalogue and a request's choices (docs/images-and-choices.md).
  /** Inline JSON `{"images": [{"name", "template": vmid|name, "os"?, "min_cores"?, "min_memory_mib"?, "min_disk_gib"?, "orgs"?}]}`. */
  PVEFLOW_IMAGES: z.string().min(1).optional(),
  /** The same JSON in a file. Unset (both): every template of the pool is an image named after it. */
  PVEFLOW_IMAGES_FILE: z.string().min(1).optional(),
  /** The networks a request may put its VM on: `vmbr0,vmbr1:100,vmbr1:200-299` (unset: only PVE_BRIDGE / PVE_VLAN). */
  PVE_NETWORKS: z.string().optional(),
  REQUEST_MAX_DISK_GIB: z.coerce.number().int().min(1).max(16_384).default(1024),
  CLOUD_INIT_MAX_PACKAGES: z.coerce.number().int().min(0).max(200).default(30),
  CLOUD_INIT_MAX_RUNCMD: z.coerce.number().int().min(0).max(200).default(30),
  CLOUD_INIT_MAX_WRITE_FILES: z.coerce.number().int().min(0).max(50).default(10),
  CLOUD_INIT_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(0)
    .max(1024 * 1024)
    .default(32 * 1024),
  /**
   * Quotas per org (README, "Quotas"): JSON, `{"Acme Corp": {"vms": 10, "cores": 40, "memory_mib": 81920, "disk_gib": 800}, "*": {"vms": 4}}`.
   * Enforced by the API at submission and approval; unset: no quotas.
   */
  PVEFLOW_QUOTAS: z
    .string()
    .transform((s, ctx) => {
      try {
        return JSON.parse(s) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message: 'not valid JSON' });
        return z.NEVER;
      }
    })
    .pipe(quotaConfigSchema)
    .default({}),
  /** How often clusterSync compares the cluster with the requests (a Temporal Schedule). */
  SYNC_INTERVAL_S: z.coerce.number().int().min(5).default(60),

  /** The start-up checks of a standalone worker: `warn` prints what to fix, `enforce` refuses to start, `off` skips. */
  PVEFLOW_DOCTOR: z.enum(['warn', 'enforce', 'off']).default('warn'),

  GUEST_IP_WAIT_S: z.coerce.number().int().positive().default(900),

  // Observability (docs/operations.md, "Observability").
  /** When set, `GET /metrics` (API and worker) needs `Authorization: Bearer <METRICS_TOKEN>`; required in production. */
  METRICS_TOKEN: z.string().min(16).optional(),
  /** The standalone worker's own `/metrics`; unset: none (the embedded default's API serves the shared one). */
  WORKER_METRICS_PORT: z.coerce.number().int().min(0).optional(),
  WORKER_METRICS_HOST: z.string().default('127.0.0.1'),
  /** `host:port` for the Temporal SDK's Prometheus exporter (loopback); its text is appended to the worker's /metrics. */
  TEMPORAL_SDK_METRICS_ADDRESS: z
    .string()
    .regex(/^[^\s:]+:\d+$/, 'host:port')
    .optional(),
  /** Tracing: `otlp` or an OTLP endpoint turns it on; `off` keeps it off even with the endpoint set. */
  PVEFLOW_TRACING: z.enum(['off', 'otlp']).optional(),
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url().optional(),
  OTEL_SERVICE_NAME: z.string().min(1).default('pveflow'),
  /** Outbound URL settings (their names) production may reach over plain http, e.g. a collector on loopback. */
  PVEFLOW_ALLOW_HTTP: commaList.default([]),
});

/**
 * The URLs pveflow, or a guest it builds, sends something to: the Proxmox API token, the NetBird token, a guest's
 * setup key, a request's notice, traces of requests. Production refuses plain http for each, unless
 * PVEFLOW_ALLOW_HTTP names it. Not here: TEMPORAL_UI_URL, the gateway's own upstream inside the deployment, which
 * carries no credential (the gateway keeps the session cookie) and only payloads still encrypted.
 */
export const outboundUrlSettings = ['PVE_ENDPOINT', 'NETBIRD_API_URL', 'NETBIRD_MANAGEMENT_URL', 'REQUEST_NOTICE_WEBHOOK_URL', 'OTEL_EXPORTER_OTLP_ENDPOINT'] as const;

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = configSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const config = parsed.data;
  if (config.PVE_ENDPOINT && (!config.PVE_TOKEN_ID || !config.PVE_TOKEN_SECRET)) {
    throw new ConfigError('PVE_ENDPOINT is set: PVE_TOKEN_ID and PVE_TOKEN_SECRET are required too');
  }
  if (config.PVE_INSECURE_SKIP_VERIFY && config.NODE_ENV === 'production') {
    throw new ConfigError(
      'PVE_INSECURE_SKIP_VERIFY=true is refused when NODE_ENV=production: anyone on the path could take the API ' +
        'token. Give the cluster CA with PVE_CA_FILE (/etc/pve/pve-root-ca.pem) or pin PVE_FINGERPRINT ' +
        '(the ssl_fingerprint shown by GET /nodes).',
    );
  }
  const notOutbound = config.PVEFLOW_ALLOW_HTTP.filter((name) => !(outboundUrlSettings as readonly string[]).includes(name));
  if (notOutbound.length) throw new ConfigError(`PVEFLOW_ALLOW_HTTP names ${notOutbound.join(', ')}: it takes outbound URL settings only (${outboundUrlSettings.join(', ')})`);
  if (config.NODE_ENV === 'production') {
    // Plain http would carry tokens, setup keys and request details in clear to anyone on the path.
    for (const name of outboundUrlSettings) {
      const url = config[name];
      if (url && new URL(url).protocol !== 'https:' && !config.PVEFLOW_ALLOW_HTTP.includes(name)) {
        throw new ConfigError(
          `${name}=${url} is refused when NODE_ENV=production: use https:// (what pveflow sends there would cross the network in clear), ` +
            `or, for a URL that never leaves a trusted network, allow it by name: PVEFLOW_ALLOW_HTTP=${name}`,
        );
      }
    }
    if (!config.METRICS_TOKEN) {
      throw new ConfigError(
        'NODE_ENV=production needs METRICS_TOKEN (at least 16 characters): /metrics is served only with it, as ' +
          '"Authorization: Bearer <METRICS_TOKEN>" (Prometheus: authorization.credentials). Generate one: openssl rand -hex 24.',
      );
    }
  }
  if (config.NODE_ENV === 'production' && !config.PVEFLOW_CODEC_KEYS && !config.PVEFLOW_CODEC_KEY_FILE) {
    throw new ConfigError(
      'NODE_ENV=production needs PVEFLOW_CODEC_KEYS or PVEFLOW_CODEC_KEY_FILE: without them workflow inputs and results ' +
        '(request details, build logs) are stored in Temporal in clear. Generate a key: openssl rand -base64 32.',
    );
  }
  checkTemporalTransport(config);
  addressPoolFromConfig(config); // refuses a pool it cannot use, at start-up rather than at the first build
  if (config.NETBIRD_API_URL && !config.NETBIRD_TOKEN) {
    throw new ConfigError('NETBIRD_API_URL is set: NETBIRD_TOKEN (a personal access token) is required too');
  }
  return config;
}

/** Whether pveflow speaks TLS to Temporal: TEMPORAL_TLS, else whether any TLS setting or an API key is given. */
export function temporalTlsEnabled(config: Config): boolean {
  return (
    config.TEMPORAL_TLS ??
    Boolean(
      config.TEMPORAL_TLS_SERVER_CA_CERT_PATH || config.TEMPORAL_TLS_SERVER_NAME || config.TEMPORAL_TLS_CLIENT_CERT_PATH || config.TEMPORAL_TLS_CLIENT_KEY_PATH || config.TEMPORAL_API_KEY || config.TEMPORAL_API_KEY_FILE,
    )
  );
}

/**
 * The Temporal connection's settings that cannot work together, and plaintext in production: whoever reaches the
 * frontend can do what an operator does (workflows trust the role an Update carries), so production speaks TLS to it
 * with a client certificate or an API key, unless the operator says the network alone keeps everyone else out.
 */
function checkTemporalTransport(config: Config): void {
  const tlsSettings = (['TEMPORAL_TLS_SERVER_CA_CERT_PATH', 'TEMPORAL_TLS_SERVER_NAME', 'TEMPORAL_TLS_CLIENT_CERT_PATH', 'TEMPORAL_TLS_CLIENT_KEY_PATH'] as const).filter((name) => config[name]);
  const apiKeySettings = (['TEMPORAL_API_KEY', 'TEMPORAL_API_KEY_FILE'] as const).filter((name) => config[name]);
  if (Boolean(config.TEMPORAL_TLS_CLIENT_CERT_PATH) !== Boolean(config.TEMPORAL_TLS_CLIENT_KEY_PATH)) {
    throw new ConfigError(
      `${config.TEMPORAL_TLS_CLIENT_CERT_PATH ? 'TEMPORAL_TLS_CLIENT_CERT_PATH is set without TEMPORAL_TLS_CLIENT_KEY_PATH' : 'TEMPORAL_TLS_CLIENT_KEY_PATH is set without TEMPORAL_TLS_CLIENT_CERT_PATH'}: ` +
        'a client certificate (mTLS) needs both, the certificate and its private key',
    );
  }
  if (apiKeySettings.length === 2) throw new ConfigError('TEMPORAL_API_KEY and TEMPORAL_API_KEY_FILE are both set: give the API key one way');
  if (config.TEMPORAL_TLS === false && apiKeySettings.length > 0) {
    throw new ConfigError(`${apiKeySettings[0]} is set with TEMPORAL_TLS=false: an API key is sent only over TLS (it would cross the network in clear); unset TEMPORAL_TLS or set it to true`);
  }
  if (config.TEMPORAL_TLS === false && tlsSettings.length > 0) {
    throw new ConfigError(`${tlsSettings.join(', ')} ${tlsSettings.length > 1 ? 'are' : 'is'} set with TEMPORAL_TLS=false: unset TEMPORAL_TLS (they turn TLS on) or drop them`);
  }
  const secured = temporalTlsEnabled(config);
  if (!config.TEMPORAL_ADDRESS) {
    if (secured) throw new ConfigError("TLS to Temporal is configured without TEMPORAL_ADDRESS: the embedded default's dev server speaks plaintext on loopback only; set TEMPORAL_ADDRESS to your cluster's frontend");
    return;
  }
  if (config.NODE_ENV === 'production' && !secured && !config.TEMPORAL_ALLOW_PLAINTEXT) {
    throw new ConfigError(
      `TEMPORAL_ADDRESS=${config.TEMPORAL_ADDRESS} without TLS is refused when NODE_ENV=production: whoever reaches the Temporal frontend acts as an ` +
        'operator. Give a client certificate (TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH, with TEMPORAL_TLS_SERVER_CA_CERT_PATH ' +
        'for a private CA) or an API key (TEMPORAL_API_KEY_FILE); or set TEMPORAL_ALLOW_PLAINTEXT=true where the network alone keeps everyone else out ' +
        '(docs/operations.md, "Who may reach Temporal").',
    );
  }
}

/** The static address pool (PVE_IP_POOL, PVE_IP_GATEWAY, PVE_IP_EXCLUDE), or undefined for DHCP. */
export function addressPoolFromConfig(config: Config): AddressPoolSpec | undefined {
  if (!config.PVE_IP_POOL) {
    if (config.PVE_IP_GATEWAY) throw new ConfigError('PVE_IP_GATEWAY is set without PVE_IP_POOL: set the subnet too (e.g. PVE_IP_POOL=10.20.30.0/24), or unset it for DHCP');
    return undefined;
  }
  const subnet = parseSubnet(config.PVE_IP_POOL);
  if ('error' in subnet) throw new ConfigError(`PVE_IP_POOL ${subnet.error}`);
  const range = subnetRange(subnet);
  const gateway = parseIpv4(config.PVE_IP_GATEWAY ?? '');
  if (gateway === undefined) throw new ConfigError('PVE_IP_POOL is set: PVE_IP_GATEWAY must be the IPv4 gateway of that subnet');
  if (!inRanges(gateway, [range])) throw new ConfigError(`PVE_IP_GATEWAY ${config.PVE_IP_GATEWAY} is not inside PVE_IP_POOL ${config.PVE_IP_POOL}`);
  const exclude = parseRangeList(config.PVE_IP_EXCLUDE);
  if ('error' in exclude) throw new ConfigError(`PVE_IP_EXCLUDE ${exclude.error}`);
  const pool: AddressPoolSpec = { range, prefix: subnet.prefix, gateway, exclude };
  if (poolSize(pool) === 0) throw new ConfigError(`PVE_IP_EXCLUDE leaves no address of PVE_IP_POOL ${config.PVE_IP_POOL} to hand out`);
  return pool;
}

/** The request policy the configuration gives new requests. */
export function requestPolicyFromConfig(config: Config): RequestPolicy {
  const autoApprove =
    config.AUTO_APPROVE_ORGS.length > 0 || (config.AUTO_APPROVE_MAX_CORES > 0 && config.AUTO_APPROVE_MAX_MEMORY_MIB > 0)
      ? { orgs: config.AUTO_APPROVE_ORGS, maxCores: config.AUTO_APPROVE_MAX_CORES, maxMemoryMiB: config.AUTO_APPROVE_MAX_MEMORY_MIB }
      : undefined;
  return {
    pendingExpiryHours: config.REQUEST_PENDING_EXPIRY_H,
    maxLeaseDays: config.REQUEST_MAX_LEASE_DAYS,
    endNoticeHours: config.REQUEST_END_NOTICE_H,
    noticeWebhookUrl: config.REQUEST_NOTICE_WEBHOOK_URL,
    ...(autoApprove ? { autoApprove } : {}),
    snapshotLimit: config.REQUEST_SNAPSHOT_LIMIT,
    shutdownTimeoutSeconds: config.REQUEST_SHUTDOWN_TIMEOUT_S,
  };
}

/** The credential key directory (CREDENTIAL_KEYS_DIR, else under DATA_DIR): the API and the workers must agree on it. */
export function credentialKeysDir(config: Pick<Config, 'CREDENTIAL_KEYS_DIR' | 'DATA_DIR'>): string {
  return config.CREDENTIAL_KEYS_DIR ?? `${config.DATA_DIR.replace(/\/+$/, '')}/credential-keys`;
}
