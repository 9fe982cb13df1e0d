import { z } from 'zod';
import type { PveClient } from '../clients/pve';
import { fail, pass, type Finding } from './finding';
import { nodeStorageSchema } from './schemas';

/**
 * The image catalogue and the networks as the nodes must hold them (issue 31 §4): every image's template exists, is
 * a template, and can be cloned onto every node placement may choose; every allowed network's bridge exists on every
 * such node; some storage takes `import` content, so that images can be imported at all. Each failure names what is
 * missing, where, and what to do.
 */

/** A catalogue entry as the doctor needs it: its name and its template (VMID, or name in the pool). */
export interface CatalogueImage {
  name: string;
  template: number | string;
  /** The VMIDs of its templates when it has one per node (imported onto storage local to each node). */
  perNode?: number[];
}

const sdnContentSchema = z.array(z.object({ vnet: z.string() }).loose());
const resourceSchema = z.array(
  z.object({ vmid: z.number().optional(), name: z.string().optional(), node: z.string().optional(), template: z.union([z.number(), z.boolean()]).optional(), pool: z.string().optional() }).loose(),
);
const configSchema = z.record(z.string(), z.unknown());

/** Which placement nodes a template can be cloned onto, as Proxmox decides it (reference §4.8, §6.4). */
export function unreachableNodes(template: { node: string; storages: readonly { id: string; sharedOn: readonly string[] }[] }, nodes: readonly string[], target?: { id: string; sharedOn: readonly string[] }): string[] {
  return nodes.filter((n) => {
    if (n === template.node) return false;
    // A full clone onto PVE_TARGET_STORAGE reaches every node that storage is shared with.
    if (target) return !target.sharedOn.includes(n);
    // Otherwise each disk stays on its storage: a clone to another node needs every one of them shared with it.
    return !template.storages.every((s) => s.sharedOn.includes(n));
  });
}

/** The nodes on which `storage` is a shared storage the token sees (`GET /nodes/{n}/storage?storage=`). */
async function sharedOn(pve: PveClient, storage: string, nodes: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const node of nodes) {
    const entry = (await pve.call('GET', `/nodes/${encodeURIComponent(node)}/storage`, { storage }, nodeStorageSchema).catch(() => [])).find((s) => s.storage === storage);
    const shared = (entry as { shared?: unknown } | undefined)?.shared;
    if (entry && (shared === 1 || shared === true)) out.push(node);
  }
  return out;
}

export async function checkCatalogue(pve: PveClient, images: readonly CatalogueImage[], nodes: readonly string[], opts: { pool: string; targetStorage?: string }): Promise<Finding[]> {
  if (images.length === 0) return [];
  let resources: z.infer<typeof resourceSchema>;
  try {
    resources = await pve.call('GET', '/cluster/resources', { type: 'vm' }, resourceSchema);
  } catch (err) {
    return [fail('pve.images', `cannot list the VMs to find the images' templates: ${describe(err)}`)];
  }
  const target = opts.targetStorage ? { id: opts.targetStorage, sharedOn: await sharedOn(pve, opts.targetStorage, nodes) } : undefined;
  const findings: Finding[] = [];
  for (const image of images) {
    const check = `pve.image ${image.name}`;
    const templates = image.perNode && image.perNode.length > 1 ? image.perNode : [image.template];
    // Each template reaches some nodes; placement needs every node reached by one of them.
    const reached: Array<{ vmid: number; node: string; missing: string[]; local: string[] }> = [];
    let failed: Finding | undefined;
    for (const template of templates) {
      const one = await templateReach(pve, { resources, image, template, nodes, target, pool: opts.pool });
      if ('finding' in one) failed ??= one.finding;
      else reached.push(one);
    }
    if (failed && reached.length === 0) {
      findings.push(failed);
      continue;
    }
    const missing = nodes.filter((n) => reached.every((r) => r.missing.includes(n)));
    const where = reached.map((r) => `${r.vmid} on ${r.node}`).join(', ');
    if (failed) findings.push(failed);
    if (missing.length === 0) {
      findings.push(pass(check, `image ${image.name}: template ${where} can be cloned onto ${nodes.join(', ') || '(no node)'}`));
      continue;
    }
    const first = reached[0]!;
    const local = [...new Set(reached.flatMap((r) => r.local))];
    findings.push(
      fail(
        check,
        `image ${image.name}: template ${reached.length > 1 ? where : `${first.vmid} lives on ${first.node}`}${local.length ? ` with its disks on ${local.join(', ')}, not shared with ${missing.join(', ')}` : ''}: builds placed on ${missing.join(', ')} would be refused ("VM uses local storage")`,
        reached.length > 1
          ? `import the image again (pveflow images import, no node named) so that every node gets its template, or limit PVE_NODE_SELECTOR to ${reached.map((r) => r.node).join(',')}`
          : `import the image onto a storage shared with every node (or move the template's disks there: qm disk move ${first.vmid} <disk> <shared storage>), set PVE_TARGET_STORAGE to a shared storage, or limit PVE_NODE_SELECTOR to ${first.node}`,
      ),
    );
  }
  return findings;
}

/** Storages of a config's disks and its cloud-init drive (CD-ROMs with media excepted). */
function diskStorages(config: Record<string, unknown>): string[] {
  const out = new Set<string>();
  for (const [key, value] of Object.entries(config)) {
    if (!/^(ide|sata|scsi|virtio|efidisk|tpmstate)\d+$/.test(key) || typeof value !== 'string') continue;
    const [volume = '', ...opts] = value.split(',');
    const colon = volume.indexOf(':');
    if (colon <= 0 || (opts.includes('media=cdrom') && !/cloudinit/.test(volume))) continue;
    out.add(volume.slice(0, colon));
  }
  return [...out];
}

/** Every allowed network's bridge on every node placement may choose (the `localnetwork` zone's vnets of that node). */
export async function checkBridges(pve: PveClient, bridges: readonly string[], nodes: readonly string[]): Promise<Finding[]> {
  const wanted = [...new Set(bridges)];
  const findings: Finding[] = [];
  for (const node of nodes) {
    const check = `pve.bridges ${node}`;
    let present: Set<string>;
    try {
      present = new Set((await pve.call('GET', `/nodes/${encodeURIComponent(node)}/sdn/zones/localnetwork/content`, {}, sdnContentSchema)).map((v) => v.vnet));
    } catch (err) {
      findings.push(fail(check, `cannot list the bridges of ${node}: ${describe(err)}`, 'the token needs SDN.Audit on /sdn/zones/localnetwork (docs/operations.md)'));
      continue;
    }
    const missing = wanted.filter((b) => !present.has(b));
    findings.push(
      missing.length === 0
        ? pass(check, `${wanted.join(', ')} exist${wanted.length === 1 ? 's' : ''} on ${node}`)
        : fail(
            check,
            `${missing.map((b) => `bridge ${b}`).join(', ')} (PVE_BRIDGE / PVE_NETWORKS) ${missing.length === 1 ? 'does' : 'do'} not exist on ${node}: a VM placed there could not be attached`,
            `create ${missing.join(', ')} on ${node} (Node → System → Network → Create → Linux Bridge, then Apply Configuration), remove ${node} from PVE_NODE_SELECTOR, or remove the bridge from PVE_NETWORKS`,
          ),
    );
  }
  return findings;
}

/** The storages that take `import` content on the placement nodes (image imports download there). */
export async function importStorages(pve: PveClient, nodes: readonly string[]): Promise<{ storages: string[]; findings: Finding[] }> {
  const byNode = new Map<string, string[]>();
  for (const node of nodes) {
    const list = await pve.call('GET', `/nodes/${encodeURIComponent(node)}/storage`, { content: 'import' }, nodeStorageSchema).catch(() => []);
    byNode.set(
      node,
      list.filter((s) => (s.content ?? '').split(',').includes('import')).map((s) => s.storage),
    );
  }
  const storages = [...new Set([...byNode.values()].flat())];
  if (storages.length === 0) {
    return {
      storages,
      findings: [
        fail(
          'pve.import-storage',
          `no storage the token can see takes import content on ${nodes.join(', ') || '(no node)'}: images cannot be imported`,
          'add import to a file-based storage’s content (a directory, NFS or CephFS storage: the download needs a file system), e.g. pvesm set local --content iso,vztmpl,backup,snippets,import; the token needs Datastore.AllocateSpace on it',
        ),
      ],
    };
  }
  const without = [...byNode].filter(([, s]) => s.length === 0).map(([n]) => n);
  return {
    storages,
    findings: [pass('pve.import-storage', `${storages.join(', ')} take${storages.length === 1 ? 's' : ''} import content${without.length ? ` (none on ${without.join(', ')})` : ''}`)],
  };
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Where one template of `image` can be cloned onto, or the finding that says why it cannot be used at all. */
async function templateReach(
  pve: PveClient,
  c: { resources: z.infer<typeof resourceSchema>; image: CatalogueImage; template: number | string; nodes: readonly string[]; target: { id: string; sharedOn: readonly string[] } | undefined; pool: string },
): Promise<{ vmid: number; node: string; missing: string[]; local: string[] } | { finding: Finding }> {
  const { image, template, nodes, target } = c;
  const check = `pve.image ${image.name}`;
  const found = c.resources.find((r) => (typeof template === 'number' ? r.vmid === template : r.name === template && (r.template === 1 || r.template === true)));
  if (!found?.node || found.vmid === undefined) {
    return {
      finding: fail(
        check,
        `image ${image.name}: its template ${template} does not exist, or the token cannot see it`,
        `import the image again (pveflow images import), or make the template and add it to the pool (pveum pool modify ${c.pool} --vms <vmid>); else remove ${image.name} from the catalogue`,
      ),
    };
  }
  if (!(found.template === 1 || found.template === true)) {
    return { finding: fail(check, `image ${image.name}: VM ${found.vmid} on ${found.node} is not a template`, `qm template ${found.vmid}   (on ${found.node}; shut the VM down first)`) };
  }
  if (!nodes.includes(found.node) && target === undefined) {
    // Clones are made on the template's node: it must be up, whether or not VMs may run there.
    const online = await pve
      .nodes()
      .then((list) => list.some((n) => n.node === found.node && n.status === 'online'))
      .catch(() => true);
    if (!online) {
      return {
        finding: fail(check, `image ${image.name}: template ${found.vmid} is on ${found.node}, which is offline: no VM of it can be cloned`, `bring ${found.node} back, or import the image onto a node that is up`),
      };
    }
  }
  let storages: string[];
  try {
    const config = await pve.call('GET', `/nodes/${encodeURIComponent(found.node)}/qemu/${found.vmid}/config`, {}, configSchema);
    storages = diskStorages(config);
  } catch (err) {
    return { finding: fail(check, `image ${image.name}: cannot read the config of template ${found.vmid} on ${found.node}: ${describe(err)}`) };
  }
  const disks = await Promise.all(storages.map(async (id) => ({ id, sharedOn: await sharedOn(pve, id, nodes) })));
  const missing = unreachableNodes({ node: found.node, storages: disks }, nodes, target);
  const local = disks.filter((d) => missing.some((n) => !d.sharedOn.includes(n))).map((d) => d.id);
  return { vmid: found.vmid, node: found.node, missing, local };
}
