import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { implementedRoutes } from '../src/simulators/pve';
import { PVE_API_FACTS_FILE, PveApiSchema, resolveProperty } from '../src/simulators/pve/schema';

/**
 * The Proxmox VE API schema's facts in the repository (scripts/derive-pve-schema-facts.ts): where they come from,
 * facts only, and every one the simulator validates with.
 */
const file = JSON.parse(readFileSync(PVE_API_FACTS_FILE, 'utf8')) as { provenance: Record<string, string>; paths: Record<string, unknown> };

test('the facts name their source, version and the script that derived them', () => {
  assert.match(file.provenance.source!, /pve-docs 9\.1\.3/);
  assert.equal(file.provenance.derivedBy, 'scripts/derive-pve-schema-facts.ts');
  assert.match(file.provenance.inputSha256!, /^[0-9a-f]{64}$/);
  assert.ok('/cluster/replication' in file.paths && '/nodes/{node}/lxc' in file.paths, "every path of the schema, not only the simulator's");
});

test('no prose: no description, type text or title anywhere, whatever a parameter is called', () => {
  const prose = new Set(['description', 'verbose_description', 'format_description', 'typetext', 'title', 'renderer']);
  const found: string[] = [];
  // Under `properties`, `format` (property-string sub-keys) and the paths, keys are names, not keywords.
  const walk = (value: unknown, where: string, namesHere: boolean): void => {
    if (Array.isArray(value)) return value.forEach((v, i) => walk(v, `${where}[${i}]`, false));
    if (!value || typeof value !== 'object') return;
    for (const [key, v] of Object.entries(value)) {
      if (!namesHere && prose.has(key)) found.push(`${where}.${key}`);
      walk(v, `${where}.${key}`, (key === 'properties' || key === 'format') && typeof v === 'object');
    }
  };
  walk(file.paths, '', true);
  assert.deepEqual(found.slice(0, 5), []);
  assert.ok(!/\(n is 0 to \d+\)/.test(readFileSync(PVE_API_FACTS_FILE, 'utf8')), 'the index ranges are numbers, not their sentence');
});

test('every route the simulator serves has its method in the facts, with its permissions', () => {
  const schema = PveApiSchema.fromFacts();
  for (const route of implementedRoutes) {
    const [method, path] = route.split(' ') as [string, string];
    const facts = schema.method(path, method);
    assert.ok(facts?.parameters, `${route} has parameters`);
    assert.ok(facts.permissions !== undefined, `${route} has permissions`);
  }
});

test('an indexed key is resolved within the range the schema states (scsi0..30, virtio0..15)', () => {
  const properties = PveApiSchema.fromFacts().method('/nodes/{node}/qemu/{vmid}/config', 'PUT')!.parameters!.properties!;
  assert.equal(properties['scsi[n]']!.indexMax, 30);
  assert.ok(resolveProperty(properties, 'scsi30'));
  assert.equal(resolveProperty(properties, 'scsi31'), undefined);
  assert.ok(resolveProperty(properties, 'virtio15'));
  assert.equal(resolveProperty(properties, 'virtio16'), undefined);
});
