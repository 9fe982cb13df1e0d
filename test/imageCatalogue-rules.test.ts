import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { downloadedBytes } from '../src/activities/proxmox/imageImport';
import { importInputFor } from '../src/api/catalogue/catalogueRoutes';
import { imageImportBody } from '../src/api/catalogue/catalogueSchemas';
import { importUrlRefusal } from '../src/api/catalogue/importUrlPolicy';
import { importFileName } from '../src/contracts/imageImport';
import { imageCatalogue } from '../src/domain/imageCatalogue';
import { addImage, deleteImage, emptyCatalogue, retireImage, seedCatalogue, updateImage, type CatalogueEntry } from '../src/domain/catalogueRules';

/** The catalogue's rules, the import URL policy and the reading of a download's progress, without Temporal. */
const at = '2026-12-07T10:00:00Z';
const entry = (name: string, more: Partial<CatalogueEntry> = {}): CatalogueEntry => ({ name, template: 9000, origin: 'import', addedAt: at, ...more });

describe('the catalogue rules', () => {
  test('PVEFLOW_IMAGES seeds missing names only, makes the catalogue curated, and never brings back a deleted one', () => {
    const seeded = seedCatalogue(emptyCatalogue, [{ name: 'debian-12', template: 9000 }], at);
    assert.equal(seeded.curated, true);
    assert.deepEqual(
      seeded.entries.map((e) => [e.name, e.origin]),
      [['debian-12', 'seed']],
    );
    const changed = updateImage(seeded, 'debian-12', { min_cores: 4 });
    assert.ok(changed.ok);
    const reseeded = seedCatalogue(changed.state, [{ name: 'debian-12', template: 9000 }], at);
    assert.equal(reseeded.entries[0]!.min_cores, 4, "the API's change stands");
    const deleted = deleteImage(reseeded, 'debian-12', []);
    assert.ok(deleted.ok);
    assert.deepEqual(seedCatalogue(deleted.state, [{ name: 'debian-12', template: 9000 }], at).entries, []);
    assert.equal(seedCatalogue(emptyCatalogue, undefined, at), emptyCatalogue, 'unset: no change, not curated');
  });

  test('a name taken is a conflict; an unknown one is not found; a delete while requests use it is a conflict naming them', () => {
    const one = addImage(emptyCatalogue, entry('alma-9'));
    assert.ok(one.ok);
    const again = addImage(one.state, entry('alma-9'));
    assert.deepEqual(again.ok ? undefined : again.refusal, { field: 'name', reason: 'an image named alma-9 exists already; choose another name or delete that image first', conflict: true });
    const missing = retireImage(one.state, 'nothing');
    assert.equal(missing.ok ? undefined : missing.refusal.notFound, true);
    const used = deleteImage(one.state, 'alma-9', ['VM-AAAA1', 'VM-AAAA2']);
    assert.match(used.ok ? '' : used.refusal.reason, /used by request\(s\) VM-AAAA1, VM-AAAA2: retire it now/);
    const retired = retireImage(one.state, 'alma-9');
    assert.equal(retired.ok && retired.state.entries[0]!.retired, true);
    const orgsCleared = updateImage(updateImage(one.state, 'alma-9', { orgs: ['Acme'] }).ok ? (updateImage(one.state, 'alma-9', { orgs: ['Acme'] }) as { state: typeof one.state }).state : one.state, 'alma-9', {
      orgs: null,
    });
    assert.equal(orgsCleared.ok && orgsCleared.state.entries[0]!.orgs, undefined);
  });
});

describe('the import URL policy and input', () => {
  test('an image with a template per node offers them all, its first as its template; uncurated, none of them is an image of its own', () => {
    const pool = [
      { vmid: 9000, name: 'debian-12-cloudinit', node: 'pve1' },
      { vmid: 9201, name: 'image-alma', node: 'pve1', diskGiB: 3 },
      { vmid: 9202, name: 'image-alma', node: 'pve2', diskGiB: 3 },
    ];
    const alma = entry('alma', {
      template: 9201,
      templates: [
        { node: 'pve1', vmid: 9201 },
        { node: 'pve2', vmid: 9202 },
      ],
    });
    const images = imageCatalogue(pool, [alma], false);
    assert.deepEqual(
      images.map((i) => [i.name, i.templateVmid]),
      [
        ['alma', 9201],
        ['debian-12-cloudinit', 9000],
      ],
    );
    assert.deepEqual(images[0]!.templates, [
      { node: 'pve1', vmid: 9201 },
      { node: 'pve2', vmid: 9202 },
    ]);
    assert.equal(images[0]!.minimum.diskGiB, 3);
    // One template (a shared storage, a seeded entry): no list, the template alone.
    assert.equal(imageCatalogue(pool, [entry('one', { template: 9000 })], true)[0]!.templates, undefined);
  });

  test('only http(s); loopback and link-local refused when production says so; credentials never', () => {
    assert.equal(importUrlRefusal('https://cloud.debian.org/x.qcow2', { refuseLocal: true }), undefined);
    assert.match(importUrlRefusal('file:///etc/passwd', { refuseLocal: false })!, /only http and https/);
    for (const local of ['http://127.0.0.1/x.qcow2', 'http://localhost/x.qcow2', 'http://169.254.169.254/x.qcow2', 'http://[::1]/x.qcow2', 'http://[fe80::1]/x.qcow2']) {
      assert.match(importUrlRefusal(local, { refuseLocal: true })!, /loopback or link-local/, local);
      assert.equal(importUrlRefusal(local, { refuseLocal: false }), undefined, local);
    }
    assert.equal(importUrlRefusal('http://10.0.0.5/x.qcow2', { refuseLocal: true }), undefined, 'a private network is where mirrors live');
    assert.match(importUrlRefusal('https://u:p@example.org/x.qcow2', { refuseLocal: false })!, /credentials/);
  });

  test("an import's body becomes the workflow's input, or the issues a 400 names", () => {
    const body = imageImportBody.parse({ name: 'alma-9', os: 'AlmaLinux 9', url: 'https://example.org/alma.img', checksum: 'A'.repeat(64), checksum_algorithm: 'sha256', min_disk_gib: 10 });
    const input = importInputFor(body, 'ops', true, 'ceph');
    assert.ok(!('issues' in input));
    assert.deepEqual(input.source, { url: 'https://example.org/alma.img', checksum: 'a'.repeat(64), checksumAlgorithm: 'sha256', extension: 'img' });
    assert.equal(input.diskStorage, 'ceph', 'the deployment default');
    assert.equal(importFileName('alma-9', 'abcdef0123456789', 'img'), 'pveflow-alma-9-abcdef01.qcow2', 'an import storage takes no .img');
    const volume = importInputFor(imageImportBody.parse({ name: 'x', os: 'x', volume: 'local:import/x.qcow2', checksum: 'ab' }), 'ops', true);
    assert.deepEqual('issues' in volume ? volume.issues.map((i) => i.field) : [], ['checksum']);
  });

  test("a download's bytes are read from wget's dot lines and its Length", () => {
    const log = [
      'downloading http://x/y.qcow2 to /var/lib/vz/import/y.qcow2',
      'Length: 104857600 (100M) [application/octet-stream]',
      "Saving to: '/var/lib/vz/import/y.qcow2.tmp_dwnl.1'",
      '     0K ........ ........ ........ ........  32% 50.0M 1s',
      ' 32768K ........ ...',
    ];
    assert.deepEqual(downloadedBytes(log), { bytes: 32768 * 1024 + 11 * 1024 * 1024, totalBytes: 104857600 });
    assert.equal(downloadedBytes(['nothing yet']), undefined);
  });
});
