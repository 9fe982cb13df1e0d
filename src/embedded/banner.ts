import { relative } from 'node:path';
import type { WorldOrigin } from '../simulators/world';

/**
 * What `npm start` prints once everything serves: every endpoint on its own line, a label and at least two spaces
 * before its address, then what each is, whether the webhook takes deliveries, and where the simulated world's
 * credentials are. Pure text from plain facts, so a test reads it without starting anything.
 */
export interface BannerFacts {
  /** The release (package.json's version). */
  version?: string;
  apiUrl: string;
  temporal: { address: string; uiUrl?: string; namespace: string; taskQueue: string };
  pve: { endpoint: string; simulated: boolean; pool: string; templateVmid: number; caFile?: string };
  sftpNodes: Record<string, { host: string; port: number }>;
  netbird: { url: string; simulated: boolean };
  /** WEBHOOK_SECRET is set: the intake verifies and takes deliveries (503 without it). */
  webhook: boolean;
  metricsUrls: string[];
  metricsToken: boolean;
  dataDir: string;
  /** Present when the simulators run. */
  world?: { origin: WorldOrigin; accessFile: string; realGuestsDir?: string };
}

const LABEL_WIDTH = 24;

export function bannerLines(f: BannerFacts): string[] {
  const line = (label: string, value: string) => `  ${label.padEnd(LABEL_WIDTH - 2)}  ${value}`;
  const show = (path: string) => {
    const rel = relative(process.cwd(), path);
    return rel && !rel.startsWith('..') ? rel : path;
  };
  const lines = [
    '',
    f.version ? `pveflow ${f.version} is running` : 'pveflow is running',
    line('API', `${f.apiUrl}  (POST /api/device_requests; OpenAPI ${f.apiUrl}/api/docs)`),
    line('Web console', `${f.apiUrl}/  (sign in with an API key)`),
    line('Webhook', `${f.apiUrl}/api/hooks/device_requests  ${f.webhook ? 'on: deliveries signed with WEBHOOK_SECRET' : 'off: set WEBHOOK_SECRET (16+ characters) to take signed deliveries; until then it answers 503'}`),
    ...(f.temporal.uiUrl ? [line('Temporal UI', `${f.temporal.uiUrl}  (find a request: Serial = "VM-XXXXX")`)] : []),
    line('Temporal', `${f.temporal.address}  namespace ${f.temporal.namespace}, task queue ${f.temporal.taskQueue}`),
    line(f.pve.simulated ? 'Proxmox VE (simulated)' : 'Proxmox VE', `${f.pve.endpoint}  pool ${f.pve.pool}, template ${f.pve.templateVmid}${f.pve.caFile ? `, CA ${show(f.pve.caFile)}` : ''}`),
    line(
      'SFTP to nodes',
      Object.entries(f.sftpNodes)
        .map(([n, a]) => `${n}=${a.host}:${a.port}`)
        .join('  '),
    ),
    line(f.netbird.simulated ? 'NetBird (simulated)' : 'NetBird', f.netbird.url),
    ...(f.world ? [line('Simulated world', describeOrigin(f.world.origin, show)), line('  its credentials', `${show(f.world.accessFile)}  (tokens, CA, host keys; \`pveflow doctor\` reads it)`)] : []),
    ...(f.world?.realGuestsDir ? [line('  real guests', `on: VMs boot under QEMU; a VM's SSH port is in ${show(f.world.realGuestsDir)}/vm-<vmid>/guest.json`)] : []),
    line('Metrics', `${f.metricsUrls.join('  ')}${f.metricsToken ? '  (bearer METRICS_TOKEN)' : ''}`),
    line('Data', `${show(f.dataDir)}/`),
    '',
    'Ctrl-C stops everything.',
  ];
  return lines;
}

function describeOrigin(origin: WorldOrigin, show: (p: string) => string): string {
  switch (origin.kind) {
    case 'restored':
      return `restored from ${show(origin.file)} (saved ${origin.savedAt}: ${origin.vms} VMs incl. templates, ${origin.peers} VPN peers); \`npm start -- --reset-sim\` starts afresh`;
    case 'reset':
      return `started afresh (--reset-sim)${origin.hadState ? ": the VMs, snippets and VPN peers of before are gone, and the next cluster sync reports their requests' VMs as vanished" : ''}; kept in ${show(origin.file)}`;
    case 'new':
      return origin.file ? `new; kept in ${show(origin.file)} across restarts` : 'new (not kept across restarts)';
  }
}
