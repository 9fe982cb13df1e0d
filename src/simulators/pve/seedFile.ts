import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import type { ClusterSeed } from './seed';

/**
 * A seed cluster read from JSON (the standalone server's `--seed`): the `ClusterSeed` shape, checked at the edge,
 * with one convenience — a token without `secret` gets a fresh UUID, returned so it can be printed.
 */
const nodeSchema = z
  .object({
    name: z.string().regex(/^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$/, 'a node name is a DNS label'),
    status: z.enum(['online', 'offline']).optional(),
    maxcpu: z.number().int().positive(),
    cpu: z.number().min(0).max(1),
    maxmem: z.number().nonnegative(),
    mem: z.number().nonnegative(),
    maxdisk: z.number().nonnegative(),
    disk: z.number().nonnegative(),
    uptime: z.number().nonnegative(),
  })
  .strict();

const seedFileSchema = z
  .object({
    nodes: z.array(nodeSchema).min(1),
    storages: z.array(
      z
        .object({
          id: z.string(),
          type: z.enum(['dir', 'lvmthin', 'lvm', 'rbd', 'nfs', 'zfspool', 'cephfs']),
          content: z.array(z.string()),
          shared: z.boolean(),
          nodes: z.array(z.string()).optional(),
          total: z.number().positive(),
          used: z.number().nonnegative(),
        })
        .strict(),
    ),
    pools: z.array(z.object({ poolid: z.string(), comment: z.string().optional(), storages: z.array(z.string()).optional() }).strict()),
    vms: z.array(
      z
        .object({
          vmid: z.number().int().min(100),
          node: z.string(),
          pool: z.string().optional(),
          config: z.record(z.string(), z.union([z.string(), z.number()])),
          running: z.boolean().optional(),
        })
        .strict(),
    ),
    users: z.array(z.object({ userid: z.string().includes('@'), enable: z.boolean().optional() }).strict()),
    tokens: z.array(z.object({ tokenid: z.string().regex(/^\S+@\S+![A-Za-z][A-Za-z0-9.\-_]+$/), secret: z.string().optional(), privsep: z.boolean() }).strict()),
    roles: z.record(z.string().regex(/^[A-Za-z0-9.\-_]+$/, 'a role name is letters, digits, . - _'), z.array(z.string())).optional(),
    acls: z.array(z.object({ path: z.string(), subject: z.string(), role: z.string(), propagate: z.boolean().optional() }).strict()),
    dhcpPrefix: z.string().optional(),
  })
  .strict();

export function loadSeedFile(path: string): { seed: ClusterSeed; generatedSecrets: Record<string, string> } {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`cannot read seed ${path}: ${(err as Error).message}`, { cause: err });
  }
  const parsed = seedFileSchema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new Error(`seed ${path} is not a valid cluster seed: ${issues}`);
  }
  const nodes = new Set(parsed.data.nodes.map((n) => n.name));
  for (const vm of parsed.data.vms) {
    if (!nodes.has(vm.node)) throw new Error(`seed ${path}: VM ${vm.vmid} is on unknown node '${vm.node}'`);
  }
  const generatedSecrets: Record<string, string> = {};
  const tokens = parsed.data.tokens.map((t) => {
    if (t.secret !== undefined) return { ...t, secret: t.secret };
    const secret = randomUUID();
    generatedSecrets[t.tokenid] = secret;
    return { ...t, secret };
  });
  return { seed: { ...parsed.data, tokens }, generatedSecrets };
}
