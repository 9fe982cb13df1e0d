import { PveApiError, type PveClient } from '../clients/pve';
import { fail, pass, type Finding } from './finding';
import { missingPrivileges, requiredPrivileges, type PathRequirements } from './privileges';
import { nodeStorageSchema, permissionsSchema } from './schemas';
import { checkBridges, checkCatalogue, importStorages, type CatalogueImage } from './catalogueChecks';

export interface PveCheckSettings {
  pool: string;
  templateVmid: number;
  bridge: string;
  snippetsStorage: string;
  /** When set, only these nodes take VMs: only they need the snippets storage. */
  nodeSelector?: string[];
  /** PVE_HA is on: the token then also needs what HA resources need. */
  ha?: unknown;
  /** Where full clones copy the template's disks (PVE_TARGET_STORAGE): then a template on local storage reaches every node it is shared with. */
  targetStorage?: string;
  /** The catalogue's images (PVEFLOW_IMAGES, the imported ones); omitted: only the default template is checked. */
  images?: readonly CatalogueImage[];
  /** The networks a request may use (PVE_NETWORKS); PVE_BRIDGE is checked always. */
  networks?: readonly { bridge: string }[];
}

export interface PveCheckDeps {
  pve: PveClient;
  token: { id: string; secret: string };
  settings: PveCheckSettings;
}

export interface PveCheckResult {
  findings: Finding[];
  /** The nodes VMs may land on (online, within the selector); undefined when Proxmox could not be asked. */
  nodes?: string[];
}

/** What PVE's own schema accepts as a token id (`/access/permissions` `userid`), and its UUID secrets. */
const TOKEN_ID = /^[^\s:/@]+@[A-Za-z][A-Za-z0-9.\-_]+![A-Za-z][A-Za-z0-9.\-_]+$/;
const TOKEN_SECRET = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function checkTokenFormat(token: { id: string; secret: string }): Finding[] {
  const findings: Finding[] = [];
  if (!TOKEN_ID.test(token.id)) {
    findings.push(fail('pve.token-format', `PVE_TOKEN_ID '${token.id}' is not user@realm!tokenname`, "set PVE_TOKEN_ID to the token's full id as `pveum user token list <user>` shows it, e.g. pveflow@pve!automation"));
  }
  if (/^PVEAPIToken=|=/.test(token.secret)) {
    findings.push(fail('pve.token-format', 'PVE_TOKEN_SECRET holds more than the secret (it contains “=”)', 'set PVE_TOKEN_SECRET to the UUID alone; pveflow builds the PVEAPIToken=<id>=<secret> header itself'));
  } else if (!TOKEN_SECRET.test(token.secret)) {
    findings.push(
      fail(
        'pve.token-format',
        'PVE_TOKEN_SECRET is not a UUID, which is what Proxmox VE shows once when it creates a token',
        'copy the secret from `pveum user token add` again (it cannot be shown twice: create a new token if it is lost)',
      ),
    );
  }
  return findings.length ? findings : [pass('pve.token-format', `token id ${token.id} and its secret are well-formed`)];
}

/**
 * Proxmox VE as pveflow will use it: the token authenticates; the template exists, is a template, has the guest
 * agent and a cloud-init drive; the token holds every privilege it needs where PVE checks it; the snippets storage
 * takes snippets on every node that may run a VM.
 */
export async function checkPve({ pve, token, settings }: PveCheckDeps): Promise<PveCheckResult> {
  const findings = checkTokenFormat(token);

  let pveMajor: number | undefined;
  try {
    const v = await pve.version();
    pveMajor = Number.parseInt(v.release ?? v.version, 10) || undefined;
    findings.push(pass('pve.auth', `the token authenticates; Proxmox VE ${v.version}`));
  } catch (err) {
    findings.push(fail('pve.auth', `cannot use the token: ${describe(err)}`, authFix(err, token.id)));
    return { findings };
  }

  const template = await checkTemplate(pve, settings);
  findings.push(...template.findings);

  let nodes: string[] | undefined;
  try {
    nodes = (await pve.nodes())
      .filter((n) => n.status === 'online')
      .map((n) => n.node)
      .filter((n) => !settings.nodeSelector || settings.nodeSelector.includes(n));
  } catch (err) {
    findings.push(fail('pve.nodes', `cannot list the nodes: ${describe(err)}`));
  }
  const imports = nodes ? await importStorages(pve, nodes) : { storages: [], findings: [] };
  const needs = requiredPrivileges({ ...settings, storages: template.storages, pveMajor, with: settings.ha ? ['PVE_HA'] : [], importStorages: imports.storages, nodes });
  findings.push(...(await checkPrivileges(pve, token.id, needs)));
  if (nodes) {
    findings.push(...(await checkSnippetsStorage(pve, settings.snippetsStorage, nodes)));
    findings.push(...imports.findings);
    findings.push(...(await checkBridges(pve, [settings.bridge, ...(settings.networks ?? []).map((n) => n.bridge)], nodes)));
    findings.push(...(await checkCatalogue(pve, settings.images ?? [], nodes, { pool: settings.pool, targetStorage: settings.targetStorage })));
  }
  return { findings, nodes };
}

/**
 * download-url takes `Sys.AccessNetwork` on the node, or `Sys.Audit` with `Sys.Modify` on `/` (pve-storage
 * `Status.pm download_url`'s `or`): a token that has the old pair lacks nothing on the node.
 */
async function networkAccessOnRoot(pve: PveClient): Promise<boolean> {
  try {
    const tree = await pve.call('GET', '/access/permissions', { path: '/' }, permissionsSchema);
    const granted = tree['/'] ?? (Object.keys(tree).length === 1 ? Object.values(tree)[0] : undefined) ?? {};
    return 'Sys.Audit' in granted && 'Sys.Modify' in granted;
  } catch {
    return false;
  }
}

async function checkPrivileges(pve: PveClient, tokenId: string, paths: PathRequirements[]): Promise<Finding[]> {
  const findings: Finding[] = [];
  let rootNetworkAccess: boolean | undefined;
  for (const { path, requirements } of paths) {
    const check = `pve.privileges ${path}`;
    let granted: Set<string>;
    try {
      const tree = await pve.call('GET', '/access/permissions', { path }, permissionsSchema);
      // PVE answers with the normalized path as the only key.
      const entry = tree[path] ?? (Object.keys(tree).length === 1 ? Object.values(tree)[0] : undefined) ?? {};
      granted = new Set(Object.keys(entry));
    } catch (err) {
      if (err instanceof PveApiError && err.errorClass === 'notImplemented') {
        // Asking again for every path would only repeat it.
        findings.push(fail('pve.privileges', `this Proxmox VE cannot report effective privileges: ${describe(err)}`, 'check the privileges by hand against docs/operations.md, “A role with exactly what pveflow needs”'));
        break;
      }
      findings.push(fail(check, `cannot read the token's effective privileges on ${path}: ${describe(err)}`));
      continue;
    }
    if (/^\/nodes\//.test(path) && !granted.has('Sys.AccessNetwork') && (rootNetworkAccess ??= await networkAccessOnRoot(pve))) granted.add('Sys.AccessNetwork');
    const missing = missingPrivileges(requirements, granted);
    if (missing.length === 0) {
      findings.push(pass(check, `has ${requirements.map((r) => (typeof r.privilege === 'string' ? r.privilege : r.privilege.join('|'))).join(', ')}`));
      continue;
    }
    const why = requirements
      .filter((r) => missing.includes(typeof r.privilege === 'string' ? r.privilege : r.privilege.join(' or ')))
      .map((r) => `${typeof r.privilege === 'string' ? r.privilege : r.privilege.join(' or ')} (${r.why})`);
    findings.push(fail(check, `the token lacks on ${path}: ${missing.join(', ')} — needed to ${why.join('; ')}`, grantFix(path, tokenId)));
  }
  return findings;
}

interface TemplateResult {
  findings: Finding[];
  /** Storages of the template's disks (clones allocate there). */
  storages: string[];
}

async function checkTemplate(pve: PveClient, settings: PveCheckSettings): Promise<TemplateResult> {
  const vmid = settings.templateVmid;
  const check = 'pve.template';
  let node: string | undefined;
  try {
    node = (await pve.clusterResources('vm')).find((r) => r.vmid === vmid)?.node;
  } catch (err) {
    return { findings: [fail(check, `cannot list VMs: ${describe(err)}`)], storages: [] };
  }
  if (!node) {
    return {
      findings: [
        fail(
          check,
          `template VM ${vmid} does not exist, or the token cannot see it`,
          `prepare the template (docs/operations.md, “Template”), set PVE_TEMPLATE_VMID to its id, and add it to the pool: pveum pool modify ${settings.pool} --vms ${vmid}`,
        ),
      ],
      storages: [],
    };
  }
  let raw: Record<string, unknown>;
  try {
    raw = (await pve.vmConfig(node, vmid)).raw;
  } catch (err) {
    return { findings: [fail(check, `cannot read the config of template ${vmid} on ${node}: ${describe(err)}`)], storages: [] };
  }
  const findings: Finding[] = [pass(check, `VM ${vmid} (${String(raw.name ?? 'unnamed')}) is on ${node}`)];
  const drives = drivesOf(raw);
  findings.push(
    raw.template === 1 || raw.template === '1'
      ? pass('pve.template.is-template', `VM ${vmid} is a template`)
      : fail('pve.template.is-template', `VM ${vmid} is an ordinary VM, not a template: linked clones need a template`, `qm template ${vmid}   (on ${node}; shut the VM down first)`),
    agentEnabled(raw.agent)
      ? pass('pve.template.agent', 'the guest agent option is on')
      : fail('pve.template.agent', `template ${vmid} has the guest agent off: pveflow could never learn a VM's IP address`, `qm set ${vmid} --agent enabled=1, and install qemu-guest-agent inside the template image`),
    drives.some((d) => d.cloudinit)
      ? pass('pve.template.cloudinit', 'the template has a cloud-init drive')
      : fail('pve.template.cloudinit', `template ${vmid} has no cloud-init drive: the VMs would boot without their user-data`, `qm set ${vmid} --ide2 <storage>:cloudinit`),
  );
  const storages = drives.filter((d) => d.storage && !(d.cdrom && !d.cloudinit)).map((d) => d.storage!);
  return { findings, storages: [...new Set(storages)] };
}

async function checkSnippetsStorage(pve: PveClient, storage: string, nodes: string[]): Promise<Finding[]> {
  const check = 'pve.snippets';
  const problems: Finding[] = [];
  for (const node of nodes) {
    let entry;
    try {
      entry = (await pve.call('GET', `/nodes/${encodeURIComponent(node)}/storage`, { storage }, nodeStorageSchema)).find((s) => s.storage === storage);
    } catch (err) {
      problems.push(fail(`${check} ${node}`, `cannot list the storages of ${node}: ${describe(err)}`));
      continue;
    }
    if (!entry) {
      problems.push(
        fail(
          `${check} ${node}`,
          `storage ${storage} is not available on ${node}, or the token cannot see it`,
          `enable ${storage} on ${node} (Datacenter → Storage → ${storage} → Nodes), or set PVE_SNIPPETS_STORAGE to a storage every node has; the token needs Datastore.AllocateSpace on /storage/${storage}`,
        ),
      );
      continue;
    }
    const content = (entry.content ?? '').split(',').filter(Boolean);
    if (!content.includes('snippets')) {
      problems.push(
        fail(
          `${check} ${node}`,
          `storage ${storage} does not take snippets (content: ${content.join(', ') || 'none'}): VMs would not find their cloud-init user-data`,
          `pvesm set ${storage} --content ${[...content, 'snippets'].join(',')}`,
        ),
      );
    } else if (entry.active === 0 || entry.active === false || entry.enabled === 0 || entry.enabled === false) {
      problems.push(fail(`${check} ${node}`, `storage ${storage} is disabled or not active on ${node}`, `pvesm set ${storage} --disable 0, and check that it is mounted on ${node}`));
    }
  }
  if (problems.length) return problems;
  return [pass(check, `${storage} takes snippets on ${nodes.join(', ') || '(no online node)'}`)];
}

interface Drive {
  storage?: string;
  cloudinit: boolean;
  cdrom: boolean;
}

function drivesOf(raw: Record<string, unknown>): Drive[] {
  return Object.entries(raw)
    .filter(([k, v]) => /^(ide|sata|scsi|virtio|efidisk|tpmstate)\d+$/.test(k) && typeof v === 'string')
    .map(([, v]) => {
      const [volume = '', ...opts] = (v as string).split(',');
      const colon = volume.indexOf(':');
      return {
        storage: colon > 0 && volume !== 'none' ? volume.slice(0, colon) : undefined,
        cloudinit: /cloudinit/.test(volume),
        cdrom: opts.includes('media=cdrom'),
      };
    });
}

/** `agent` is `1`, `0`, or a property string such as `enabled=1,fstrim_cloned_disks=1`. */
function agentEnabled(value: unknown): boolean {
  if (value === undefined || value === null) return false;
  const parts = String(value).split(',');
  const first = parts[0]!;
  const enabled = first.includes('=') ? parts.find((p) => p.startsWith('enabled='))?.slice('enabled='.length) : first;
  return ['1', 'on', 'yes', 'true'].includes((enabled ?? '').toLowerCase());
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function authFix(err: unknown, tokenId: string): string | undefined {
  if (!(err instanceof PveApiError)) return undefined;
  if (err.errorClass === 'auth') {
    return `check PVE_TOKEN_ID and PVE_TOKEN_SECRET against \`pveum user token list ${tokenId.split('!')[0]}\`; an expired or deleted token needs a new one`;
  }
  if (err.errorClass === 'transport') {
    return 'check PVE_ENDPOINT (https://<node>:8006) and TLS: PVE_CA_FILE=/etc/pve/pve-root-ca.pem or PVE_FINGERPRINT from GET /nodes ssl_fingerprint';
  }
  return undefined;
}

function grantFix(path: string, tokenId: string): string {
  const user = tokenId.split('!')[0];
  return (
    `grant the PVEflow role (docs/operations.md) on ${path} to the user and the token — a privilege-separated ` +
    `token gets only what both hold: pveum acl modify ${path} --roles PVEflow --users ${user} && ` +
    `pveum acl modify ${path} --roles PVEflow --tokens '${tokenId}'`
  );
}
