import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../src/config';
import { buildOpenApiDocument } from '../src/api/openapi';
import { defaultRequestChoiceSettings, requestChoicesFromConfig } from '../src/requestChoices';
import { choiceLimitRefusals, defaultChoiceLimits } from '../src/domain/choiceLimits';
import { choiceRules, type ChoiceRule } from '../src/domain/choiceRules';
import { cloudInitChoicesSchema, pveflowKeys } from '../src/domain/cloudInitChoices';
import { imageCatalogue, imageRefusals, missingImages, type PoolTemplate } from '../src/domain/imageCatalogue';
import { networkRefusal, parseAllowedNetworks } from '../src/domain/networks';

/** The rules of a request's choices and the image catalogue, as plain functions (no Temporal, no API). */

const issuesOf = (value: unknown) => {
  const parsed = cloudInitChoicesSchema.safeParse(value);
  return parsed.success ? [] : parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message, rule: (i as { params?: { rule?: string } }).params?.rule }));
};

describe('cloud-init choices: what a request may add', () => {
  test('every key pveflow owns is refused in a fragment, naming the key and why', () => {
    for (const key of ['users', 'user', 'chpasswd', 'password', 'hostname', 'fqdn', 'ssh_authorized_keys', 'ssh_pwauth', 'runcmd', 'packages', 'write_files', 'package_update', 'power_state', 'merge_how']) {
      const issues = issuesOf({ cloud_config: { [key]: key === 'ssh_pwauth' ? true : ['x'] } });
      assert.equal(issues.length, 1, key);
      assert.equal(issues[0]!.path, `cloud_config.${key}`);
      assert.equal(issues[0]!.message, pveflowKeys[key]);
      assert.equal(issues[0]!.rule, 'pveflow-key', key);
    }
    assert.match(issuesOf({ cloud_config: { users: [{ name: 'mallory' }] } })[0]!.message, /generated logins/);
  });

  test('a key pveflow does not pass on is refused, listing the ones it does', () => {
    const [issue] = issuesOf({ cloud_config: { bootcmd: ['reboot'] } });
    assert.equal(issue!.path, 'cloud_config.bootcmd');
    assert.match(issue!.message, /not a key pveflow passes on.*timezone/);
    assert.equal(issue!.rule, 'cloud-config-key');
  });

  test('swap and mounts are refused: a swap file or a mount can lie over any file of the guest', () => {
    const swap = issuesOf({ cloud_config: { swap: { filename: '/etc/shadow', size: 'auto' } } });
    assert.deepEqual(
      swap.map((i) => [i.path, i.rule]),
      [['cloud_config.swap', 'cloud-config-key']],
    );
    assert.match(swap[0]!.message, /swap/);
    const mounts = issuesOf({ cloud_config: { mounts: [['tmpfs', '/etc/ssh', 'tmpfs']] } });
    assert.deepEqual(
      mounts.map((i) => [i.path, i.rule]),
      [['cloud_config.mounts', 'cloud-config-key']],
    );
    assert.match(mounts[0]!.message, /mount/);
  });

  test("an object's own names (constructor, toString, __proto__, ...) are keys like any other: refused naming the key and the rule", () => {
    for (const key of ['constructor', 'toString', 'hasOwnProperty', 'valueOf', '__proto__']) {
      // As the API receives it: JSON.parse makes __proto__ an own key, as it does every other.
      const issues = issuesOf(JSON.parse(`{"cloud_config": {"${key}": {"a": 1}}}`));
      assert.deepEqual(
        issues.map((i) => [i.path, i.rule]),
        [[`cloud_config.${key}`, 'cloud-config-key']],
        key,
      );
      assert.match(issues[0]!.message, /not a key pveflow passes on.*timezone/, key);
    }
  });

  test('an allowed key in the wrong shape is refused at its own path', () => {
    assert.deepEqual(issuesOf({ cloud_config: { timezone: 'Europe/Paris', ntp: { servers: ['ntp.example.org'] } } }), []);
    assert.equal(issuesOf({ cloud_config: { timezone: 5 } })[0]!.path, 'cloud_config.timezone');
    assert.equal(issuesOf({ cloud_config: { timezone: 5 } })[0]!.rule, 'cloud-config-value');
    assert.equal(issuesOf({ cloud_config: { ntp: { servers: ['bad host!'] } } })[0]!.path, 'cloud_config.ntp.servers.0');
    assert.equal(issuesOf({ cloud_config: { apt: { proxy: 'ftp://x' } } })[0]!.path, 'cloud_config.apt.proxy');
  });

  test("write_files under pveflow's paths, relative or with .. are refused", () => {
    for (const path of [
      '/etc/shadow',
      '/etc/sudoers.d/me',
      '/etc/ssh/sshd_config.d/x.conf',
      '/etc/netbird/config.json',
      '/var/lib/cloud/instance/x',
      '/etc/systemd/system/qemu-guest-agent.service',
      '/usr/local/bin/netbird',
      '/usr/bin/netbird',
      '/etc/systemd/system/netbird.service',
      '/etc/systemd/system/ssh.service.d/override.conf',
      '/home/arrow/.ssh/authorized_keys',
      '/boot/grub/grub.cfg',
      '/etc/default/grub',
      '/etc/fstab',
      '/usr/sbin/qemu-ga',
      '/etc/systemd/system/app.service',
    ]) {
      const [issue] = issuesOf({ write_files: [{ path, content: 'x' }] });
      assert.equal(issue?.path, 'write_files.0.path', path);
      assert.match(issue!.message, /pveflow's/, path);
      assert.equal(issue!.rule, 'protected-path', path);
    }
    for (const path of ['etc/motd', '/etc/../etc/shadow', '/etc/', '/opt//x']) assert.equal(issuesOf({ write_files: [{ path }] })[0]?.path, 'write_files.0.path', path);
    // Dot segments and // are not in the path's pattern: they name their rule.
    for (const path of ['/opt/./x', '/etc/../tmp/x', '/opt//x'])
      assert.deepEqual(
        issuesOf({ write_files: [{ path }] }).map((i) => i.rule),
        ['path-not-normalised'],
        path,
      );
    assert.deepEqual(issuesOf({ write_files: [{ path: '/etc/motd', content: 'hi', permissions: '0644', owner: 'root:root' }] }), []);
  });

  test('write_files: an allowlist of places; anywhere else is refused naming the rule', () => {
    for (const path of ['/etc/hosts', '/etc/profile.d/x.sh', '/usr/local/bin/curl', '/usr/lib/python3/dist-packages/x.py', '/var/spool/cron/crontabs/root', '/etc/motd.d/x', '/root/x']) {
      const issues = issuesOf({ write_files: [{ path, content: 'x' }] });
      assert.deepEqual(
        issues.map((i) => [i.path, i.rule]),
        [['write_files.0.path', 'path-not-allowed']],
        path,
      );
      assert.match(issues[0]!.message, /\/opt\//, path);
    }
    for (const path of [
      '/etc/motd',
      '/etc/issue',
      '/etc/apt/sources.list.d/nginx.list',
      '/etc/apt/keyrings/nginx.gpg',
      '/home/arrow/app.conf',
      '/home/arrow/.bashrc',
      '/opt/app/config.yml',
      '/srv/data/x',
      '/var/www/html/index.html',
      '/usr/local/share/app/x',
      '/usr/local/etc/app.conf',
    ])
      assert.deepEqual(issuesOf({ write_files: [{ path, content: 'x' }] }), [], path);
  });

  test('package names and commands are checked', () => {
    assert.deepEqual(issuesOf({ packages: ['nginx', 'python3-pip', 'htop=3.2.2-2'], runcmd: ['echo hi', ['systemctl', 'enable', 'nginx']] }), []);
    assert.equal(issuesOf({ packages: ['nginx; rm -rf /'] })[0]!.path, 'packages.0');
    assert.equal(issuesOf({ runcmd: [[]] })[0]!.path.startsWith('runcmd.0'), true);
    assert.equal(issuesOf({ runcmd: ['a\0b'] })[0]!.path.startsWith('runcmd.0'), true);
  });

  test('the configured limits: counts, total size and disk, each naming its field and setting', () => {
    const limits = { ...defaultChoiceLimits, packages: 2, runcmd: 1, writeFiles: 1, bytes: 200, maxDiskGiB: 100 };
    assert.deepEqual(choiceLimitRefusals(limits, { diskGiB: 100, cloudInit: { packages: ['a', 'b'] } }), []);
    const refused = choiceLimitRefusals(limits, {
      diskGiB: 101,
      cloudInit: {
        packages: ['a', 'b', 'c'],
        runcmd: ['x', 'y'],
        write_files: [
          { path: '/a', content: 'x'.repeat(300) },
          { path: '/b', content: '' },
        ],
      },
    });
    assert.deepEqual(
      refused.map((i) => i.field),
      ['disk_gib', 'cloud_init.packages', 'cloud_init.runcmd', 'cloud_init.write_files', 'cloud_init'],
    );
    assert.match(refused[1]!.reason, /at most 2 \(CLOUD_INIT_MAX_PACKAGES\), 3 given/);
    assert.match(refused[4]!.reason, /CLOUD_INIT_MAX_BYTES/);
    assert.deepEqual(new Set(refused.map((i) => i.rule)), new Set(['choice-limit']));
  });
});

describe('networks: the allowed list', () => {
  const allowed = parseAllowedNetworks('vmbr0,vmbr1:100,vmbr1:200-299');
  test('parses bridges, single VLANs and ranges, and refuses what it cannot read', () => {
    assert.deepEqual(allowed, [{ bridge: 'vmbr0' }, { bridge: 'vmbr1', vlans: { min: 100, max: 100 } }, { bridge: 'vmbr1', vlans: { min: 200, max: 299 } }]);
    for (const bad of ['vmbr0:0', 'vmbr0:5000', 'vmbr0:300-200', 'br idge', '1abc']) assert.ok('error' in parseAllowedNetworks(bad), bad);
  });
  test('a choice on the list passes; a bridge off it names network.bridge, a VLAN off it network.vlan', () => {
    if ('error' in allowed) throw new Error(allowed.error);
    assert.equal(networkRefusal(allowed, { bridge: 'vmbr0' }, 'Acme Corp'), undefined);
    assert.equal(networkRefusal(allowed, { bridge: 'vmbr1', vlan: 250 }, 'Acme Corp'), undefined);
    assert.equal(networkRefusal(allowed, { bridge: 'vmbr9' }, 'Acme Corp')?.field, 'network.bridge');
    assert.equal(networkRefusal(allowed, { bridge: 'vmbr1', vlan: 150 }, 'Acme Corp')?.field, 'network.vlan');
    assert.equal(networkRefusal(allowed, { bridge: 'vmbr1' }, 'Acme Corp')?.field, 'network.vlan', 'vmbr1 only tagged');
    assert.equal(networkRefusal(allowed, { bridge: 'vmbr0', vlan: 100 }, 'Acme Corp')?.field, 'network.vlan', 'vmbr0 only untagged');
    assert.equal(networkRefusal(allowed, { bridge: 'vmbr9' }, 'Acme Corp')?.rule, 'network-not-allowed');
    assert.equal(networkRefusal(allowed, { bridge: 'vmbr1', vlan: 150 }, 'Acme Corp')?.rule, 'network-not-allowed');
  });
  test('a network may be reserved to organisations: another org is refused naming network and the rule', () => {
    const reserved = parseAllowedNetworks('vmbr0,vmbr1:100-199=Acme Corp|Initech,vmbr2=Acme Corp');
    if ('error' in reserved) throw new Error(reserved.error);
    assert.deepEqual(reserved, [{ bridge: 'vmbr0' }, { bridge: 'vmbr1', vlans: { min: 100, max: 199 }, orgs: ['Acme Corp', 'Initech'] }, { bridge: 'vmbr2', orgs: ['Acme Corp'] }]);
    assert.equal(networkRefusal(reserved, { bridge: 'vmbr1', vlan: 120 }, 'Initech'), undefined);
    assert.equal(networkRefusal(reserved, { bridge: 'vmbr2' }, 'Acme Corp'), undefined);
    const refused = networkRefusal(reserved, { bridge: 'vmbr1', vlan: 120 }, 'Globex');
    assert.deepEqual([refused?.field, refused?.rule], ['network', 'network-not-offered']);
    assert.match(refused!.reason, /reserved to other organisations than Globex; allowed: vmbr0 untagged$/);
    // What another org is not offered is not listed to it.
    assert.match(networkRefusal(reserved, { bridge: 'vmbr9' }, 'Globex')!.reason, /allowed: vmbr0 untagged$/);
    for (const bad of ['vmbr1=', 'vmbr1=Acme|', 'vmbr1=bad*org']) assert.ok('error' in parseAllowedNetworks(bad), bad);
  });
  test('the configuration always allows the default network, and refuses a list it cannot read', () => {
    assert.deepEqual(requestChoicesFromConfig(loadConfig({ PVE_BRIDGE: 'vmbr2', PVE_VLAN: '7', PVE_NETWORKS: 'vmbr3' })).networks, [{ bridge: 'vmbr2', vlans: { min: 7, max: 7 } }, { bridge: 'vmbr3' }]);
    assert.throws(
      () => requestChoicesFromConfig(loadConfig({ PVE_NETWORKS: 'vmbr1:x' })),
      (e: unknown) => e instanceof ConfigError && /PVE_NETWORKS/.test(e.message),
    );
  });
});

describe('image catalogue', () => {
  const templates: PoolTemplate[] = [
    { vmid: 9001, name: 'Ubuntu-24.04', node: 'pve2', diskGiB: 8 },
    { vmid: 9000, name: 'debian-12-cloudinit', node: 'pve1', cores: 2, memoryMiB: 2048, diskGiB: 4 },
    { vmid: 9002, name: 'debian-12-cloudinit', node: 'pve3', diskGiB: 4 },
  ];

  test('without configuration every template is an image named after it, a second of the same name suffixed with its VMID', () => {
    const images = imageCatalogue(templates);
    assert.deepEqual(
      images.map((i) => [i.name, i.templateVmid]),
      [
        ['debian-12-cloudinit', 9000],
        ['ubuntu-24.04', 9001],
        ['debian-12-cloudinit-9002', 9002],
      ],
    );
    assert.deepEqual(images[0]!.minimum, { cores: 1, memoryMiB: 512, diskGiB: 4 }, "the template's disk is the floor");
  });

  test('with configuration only the configured images, by VMID or template name, with their minimums and orgs', () => {
    const configured = [
      { name: 'debian-12', template: 9000, os: 'Debian 12', min_memory_mib: 1024, min_disk_gib: 2 },
      { name: 'ubuntu', template: 'Ubuntu-24.04', min_cores: 2, min_disk_gib: 20, orgs: ['Acme Corp'] },
      { name: 'gone', template: 9999 },
    ];
    const images = imageCatalogue(templates, configured);
    assert.deepEqual(
      images.map((i) => [i.name, i.templateVmid, i.os]),
      [
        ['debian-12', 9000, 'Debian 12'],
        ['ubuntu', 9001, undefined],
      ],
    );
    assert.deepEqual(images[0]!.minimum, { cores: 1, memoryMiB: 1024, diskGiB: 4 }, "a configured disk minimum below the template's is the template's");
    assert.deepEqual(images[1]!.minimum, { cores: 2, memoryMiB: 512, diskGiB: 20 });
    assert.deepEqual(
      missingImages(templates, configured).map((c) => c.name),
      ['gone'],
    );
  });

  test('a request below a minimum, or of an org the image is not offered to, is refused naming the field', () => {
    const [, ubuntu] = imageCatalogue(templates, [
      { name: 'debian-12', template: 9000 },
      { name: 'ubuntu', template: 9001, min_cores: 2, min_memory_mib: 4096, min_disk_gib: 20, orgs: ['Acme Corp'] },
    ]);
    assert.deepEqual(imageRefusals(ubuntu!, { org: 'Acme Corp', cores: 2, memoryMiB: 4096, diskGiB: 20 }), []);
    assert.deepEqual(
      imageRefusals(ubuntu!, { org: 'Globex', cores: 2, memoryMiB: 4096 }).map((i) => [i.field, i.rule]),
      [['image', 'image-not-offered']],
    );
    const below = imageRefusals(ubuntu!, { org: 'Acme Corp', cores: 1, memoryMiB: 2048, diskGiB: 10 });
    assert.deepEqual(
      below.map((i) => [i.field, i.rule]),
      [
        ['cores', 'below-image-minimum'],
        ['memory_mib', 'below-image-minimum'],
        ['disk_gib', 'below-image-minimum'],
      ],
    );
    assert.match(below[1]!.reason, /2048 MiB is below image ubuntu's minimum of 4096 MiB/);
  });

  test('a retired image is refused to every new request, whatever it asks', () => {
    const [debian] = imageCatalogue(templates, [{ name: 'debian-12', template: 9000, retired: true }]);
    assert.deepEqual(
      imageRefusals(debian!, { org: 'Acme Corp', cores: 4, memoryMiB: 8192 }).map((i) => [i.field, i.rule]),
      [['image', 'image-retired']],
    );
  });

  test('without curation every template is an image, and an imported image names its own', () => {
    const images = imageCatalogue(templates, [{ name: 'imported', template: 9001, min_cores: 2 }], false);
    assert.equal(images.find((i) => i.templateVmid === 9001)?.name, 'imported');
    assert.ok(
      images.some((i) => i.templateVmid === 9000),
      'the other templates stay images',
    );
    assert.equal(new Set(images.map((i) => i.templateVmid)).size, images.length, 'no template twice');
  });

  test('the configuration is read from PVEFLOW_IMAGES and refused, saying where, when it is wrong', () => {
    const images = JSON.stringify({ images: [{ name: 'debian-12', template: 9000, orgs: ['Acme Corp'] }] });
    assert.deepEqual(requestChoicesFromConfig(loadConfig({ PVEFLOW_IMAGES: images })).images, [{ name: 'debian-12', template: 9000, orgs: ['Acme Corp'] }]);
    assert.equal(requestChoicesFromConfig(loadConfig({})).images, undefined);
    const refusal = (env: Record<string, string>) => {
      try {
        requestChoicesFromConfig(loadConfig(env));
        return 'accepted';
      } catch (err) {
        assert.ok(err instanceof ConfigError);
        return err.message;
      }
    };
    assert.match(refusal({ PVEFLOW_IMAGES: '{' }), /PVEFLOW_IMAGES is not JSON/);
    assert.match(refusal({ PVEFLOW_IMAGES: JSON.stringify({ images: [{ name: 'Debian', template: 9000 }] }) }), /images\.0\.name/);
    assert.match(
      refusal({
        PVEFLOW_IMAGES: JSON.stringify({
          images: [
            { name: 'a', template: 9000 },
            { name: 'a', template: 9001 },
          ],
        }),
      }),
      /unique/,
    );
    assert.match(refusal({ PVEFLOW_IMAGES_FILE: '/nonexistent/images.json' }), /cannot be read/);
  });
});

describe('the rules of the images and choices in the OpenAPI document', () => {
  // Where a client reads each rule: the description of the field its 400 names (or of the image, for its minimums).
  const statedAt: Record<ChoiceRule, string[][]> = {
    'image-unknown': [['image']],
    'image-template-missing': [['image']],
    'image-not-offered': [['image']],
    'image-retired': [['image']],
    'below-image-minimum': [['image'], ['cores'], ['memory_mib'], ['disk_gib']],
    'network-not-allowed': [['network']],
    'network-not-offered': [['network']],
    'choice-limit': [['disk_gib'], ['cloud_init']],
    'pveflow-key': [['cloud_init'], ['cloud_init', 'cloud_config']],
    'cloud-config-key': [['cloud_init'], ['cloud_init', 'cloud_config']],
    'cloud-config-value': [['cloud_init'], ['cloud_init', 'cloud_config']],
    'protected-path': [['cloud_init'], ['cloud_init', 'write_files', 'path']],
    'path-not-normalised': [['cloud_init'], ['cloud_init', 'write_files', 'path']],
    'path-not-allowed': [['cloud_init'], ['cloud_init', 'write_files', 'path']],
  };

  test('every rule is stated where the document describes the field, for a request, a class and a webhook delivery', () => {
    assert.deepEqual(Object.keys(statedAt).sort(), Object.keys(choiceRules).sort(), 'a rule without a place in the document');
    const schemas = buildOpenApiDocument().components!.schemas! as Record<string, Schema>;
    for (const submission of ['DeviceRequestSubmission', 'ClassSubmission']) {
      for (const [rule, places] of Object.entries(statedAt)) {
        for (const place of places) {
          const description = descriptionAt(schemas[submission]!, place, schemas);
          assert.match(description ?? '', new RegExp(`\\b${rule}\\b`), `${submission} ${place.join('.')}: ${rule}`);
        }
      }
    }
  });
});

describe("the deployment's choices in the OpenAPI document", () => {
  const choices = {
    ...defaultRequestChoiceSettings,
    networks: [{ bridge: 'vmbr0' }, { bridge: 'vmbr1', vlans: { min: 100, max: 199 } }],
    images: [
      { name: 'debian-12', template: 9000 },
      { name: 'ubuntu', template: 9001, orgs: ['Acme Corp'] },
    ],
  };
  const schemasOf = (c?: typeof choices) => buildOpenApiDocument(c).components!.schemas! as Record<string, { properties: Record<string, Record<string, unknown>> }>;

  test('the allowed networks are the only networks the document admits, each bridge with its VLANs', () => {
    for (const submission of ['DeviceRequestSubmission', 'ClassSubmission']) {
      const network = schemasOf(choices)[submission]!.properties.network!;
      assert.match(String(network.description), /network-not-allowed/);
      assert.deepEqual(network.anyOf, [
        { type: 'object', properties: { bridge: { type: 'string', enum: ['vmbr0'] } }, required: ['bridge'], additionalProperties: false },
        { type: 'object', properties: { bridge: { type: 'string', enum: ['vmbr1'] }, vlan: { type: 'integer', minimum: 100, maximum: 199 } }, required: ['bridge', 'vlan'], additionalProperties: false },
      ]);
    }
  });

  test('configured images are an enum; without configuration (every template an image) the pattern stays', () => {
    for (const submission of ['DeviceRequestSubmission', 'ClassSubmission']) {
      assert.deepEqual(schemasOf(choices)[submission]!.properties.image!.enum, ['debian-12', 'ubuntu']);
      assert.equal(schemasOf({ ...choices, images: undefined } as unknown as typeof choices)[submission]!.properties.image!.enum, undefined);
    }
  });
});

type Schema = { description?: string; properties?: Record<string, Schema>; items?: Schema; $ref?: string; anyOf?: Schema[]; allOf?: Schema[] };

/** The description of the property at `path` (through arrays' items and $refs). */
function descriptionAt(schema: Schema, path: string[], schemas: Record<string, Schema>): string | undefined {
  const deref = (s: Schema): Schema => (s.$ref ? deref(schemas[s.$ref.replace('#/components/schemas/', '')]!) : s);
  let at = deref(schema);
  for (const name of path) {
    at = deref(at.items ?? at);
    const next = at.properties?.[name] ?? at.allOf?.map(deref).find((s) => s.properties?.[name])?.properties?.[name];
    if (!next) return undefined;
    at = next;
  }
  return at.description ?? deref(at).description;
}

test('every pattern in the OpenAPI document is a plain ECMA-262 pattern: no flags written into it, and something matches it', () => {
  const patterns: string[] = [];
  JSON.stringify(buildOpenApiDocument(defaultRequestChoiceSettings), (key, value: unknown) => {
    if (key === 'pattern' && typeof value === 'string') patterns.push(value);
    return value;
  });
  assert.ok(patterns.length > 10, `only ${patterns.length} patterns`);
  // A zod regex with a flag (/…/i, /…/u) reaches the document as '…$/i': a pattern no string can match, which
  // generated clients and schemathesis then take at its word.
  const flagged = patterns.filter((p) => /\$\/[a-z]+$/.test(p));
  assert.deepEqual(flagged, [], 'write the pattern without flags (spell out both cases, or the ranges)');
  for (const p of patterns) assert.doesNotThrow(() => new RegExp(p), p);
});
