import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MockActivityEnvironment } from '@temporalio/testing';
import { parse } from 'yaml';
import { createActivities } from '../src/activities';
import type { ActivityDeps } from '../src/activities/deps';
import { renderUserData } from '../src/activities/snippets/cloudInit';
import { loadConfig } from '../src/config';
import { deviceNames } from '../src/domain/deviceNames';
import { deviceRequestSchema } from '../src/domain/deviceRequest';
import { fragmentKeys, type CloudInitChoices } from '../src/domain/cloudInitChoices';
import { simulatorTimings } from '../src/embedded/simulatorTimings';
import { netbirdEnrollmentOf, startSimulatedWorld, type SimulatedWorld } from '../src/simulators/world';
import { closeActivityDeps, createActivityDeps } from '../src/worker';

/**
 * Real cloud-init judges the user-data pveflow writes: `cloud-init schema -c` of the distribution's package (Debian
 * 12's 22.4.x is what a Debian 12 cloud-image template runs), on the file the real activity uploaded to the node.
 * A simulator would accept whatever we taught it; this is the guest's own validator.
 */

/** `cloud-init` on PATH, or why not. CI installs Debian's package (.ci/run): there a missing binary fails. */
function findCloudInit(): string | { skipped: string } {
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) {
    const candidate = join(dir, 'cloud-init');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  const reason = 'cloud-init is not installed (apt-get install -y cloud-init): the user-data is not checked by real cloud-init';
  if (process.env.CI) throw new Error(`${reason}; CI must install it (.ci/run)`);
  return { skipped: reason };
}

interface SchemaVerdict {
  status: number | null;
  output: string;
}

function cloudInitSchema(binary: string, file: string): SchemaVerdict {
  const run = spawnSync(binary, ['schema', '-c', file], { encoding: 'utf8', timeout: 60_000 });
  return { status: run.status, output: `${run.stdout ?? ''}${run.stderr ?? ''}` };
}

function assertValid(verdict: SchemaVerdict, what: string, text: string): void {
  const context = `${what}\n--- cloud-init said:\n${verdict.output}\n--- user-data:\n${text}`;
  assert.equal(verdict.status, 0, context);
  assert.match(verdict.output, /Valid cloud-config/, context);
  // A deprecated key is accepted today and ignored by a later cloud-init: as bad as an error for a template's life.
  assert.doesNotMatch(verdict.output, /deprecat|warning|error/i, context);
}

const cloudInit = findCloudInit();
const skip = typeof cloudInit === 'string' ? false : cloudInit.skipped;

const ED25519 = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGq8S5nX0dJk3e4XhYvXbR0r1lq2mQ8vZcVbq4m7yT9P rita@acme.example';
const RSA = `ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ${'C'.repeat(300)}= rita's laptop: "work" #1`;
const ECDSA = [256, 384, 521].map((n) => `ecdsa-sha2-nistp${n} AAAAE2VjZHNhLXNoYTItbmlzdHA${'x'.repeat(40 + n / 8)}=`);
/** Comments that YAML would misread if the snippet were concatenated text: a colon-space, a leading dash, a brace. */
const AWKWARD = [`${ED25519.split(' ').slice(0, 2).join(' ')} - {not: yaml} & *alias | > ünïcødé`, `${ED25519.split(' ').slice(0, 2).join(' ')} key: value`];

describe('cloud-init user-data against real cloud-init (cloud-init schema -c)', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'pveflow-cloud-init-'));
  let world: SimulatedWorld;
  let depsDhcp: ActivityDeps;
  let depsStatic: ActivityDeps;
  let serial = 0;

  before(async () => {
    world = await startSimulatedWorld({ dir: join(dir, 'world'), timing: simulatorTimings.fast });
    depsDhcp = createActivityDeps(loadConfig({ ...world.env }));
    depsStatic = createActivityDeps(loadConfig({ ...world.env, PVE_IP_POOL: '10.20.30.0/24', PVE_IP_GATEWAY: '10.20.30.1' }));
  });
  after(async () => {
    for (const deps of [depsDhcp, depsStatic]) if (deps) await closeActivityDeps(deps);
    await world?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** What the build's snippet stage writes to the node, read back from the node's snippets directory. */
  async function snippetOf(deps: ActivityDeps, name: string, sshKeys: string[], cloudInit?: CloudInitChoices): Promise<{ file: string; text: string; hostname: string }> {
    const request = deviceRequestSchema.parse({
      serial: `VM-CI${String(++serial).padStart(3, '0')}`,
      name,
      org: 'Acme Corp',
      requester: 'rita@acme.example',
      consultants: ['alice@consultancy.example'],
      period: { start: '2026-01-01T00:00:00Z', end: '2026-02-01T00:00:00Z' },
      cores: 1,
      memoryMiB: 512,
      sshKeys,
      ...(cloudInit ? { cloudInit } : {}),
    });
    const node = 'pve2';
    await new MockActivityEnvironment().run(createActivities(deps).prepareCloudInit, { serial: request.serial, name: request.name, node, sshKeys: request.sshKeys, cloudInit: request.cloudInit });
    const file = join(world.snippetsDirOf(node), deviceNames(request.serial, request.name).snippetFile);
    return { file, text: readFileSync(file, 'utf8'), hostname: deviceNames(request.serial, request.name).hostname };
  }

  const cases: Array<{ what: string; name: string; sshKeys: string[] }> = [
    { what: 'no SSH keys', name: 'kali', sshKeys: [] },
    { what: 'one ed25519 key', name: 'kali', sshKeys: [ED25519] },
    { what: 'every key type, with comments YAML could misread', name: 'a', sshKeys: [ED25519, RSA, ...ECDSA, ...AWKWARD] },
    { what: 'the longest VM name and twenty keys', name: `a${'-b'.repeat(19)}c`, sshKeys: Array.from({ length: 20 }, (_, i) => `${ED25519} #${i}`) },
  ];

  for (const { what, name, sshKeys } of cases) {
    for (const addressing of ['DHCP', 'a static address pool'] as const) {
      test(`the uploaded user-data is valid for cloud-init, without deprecations: ${what}, ${addressing}`, async () => {
        const { file, text, hostname } = await snippetOf(addressing === 'DHCP' ? depsDhcp : depsStatic, name, sshKeys);
        assertValid(cloudInitSchema(cloudInit as string, file), `${what}, ${addressing}`, text);

        // Valid is not enough: the logins must be set the way cloud-init defines them.
        const doc = parse(text) as Record<string, any>;
        assert.deepEqual(
          doc.chpasswd.users.map((u: { name: string; type: string }) => [u.name, u.type]),
          [['root', 'hash']],
        );
        assert.match(doc.chpasswd.users[0].password, /^\$6\$/);
        const user = doc.users.find((u: unknown) => typeof u === 'object');
        assert.match(user.passwd, /^\$6\$/);
        assert.equal(user.lock_passwd, false);
        if (sshKeys.length === 0) {
          assert.equal('ssh_authorized_keys' in doc, false, 'no empty key list (cloud-init: "[] is too short")');
          assert.equal('ssh_authorized_keys' in user, false);
        } else {
          assert.deepEqual(doc.ssh_authorized_keys, sshKeys);
          assert.deepEqual(user.ssh_authorized_keys, sshKeys);
        }
        assert.equal(doc.hostname, hostname);
        assert.ok(netbirdEnrollmentOf(text), 'the guest still finds its NetBird enrolment');
      });
    }
  }

  /**
   * Every kind of choice a request may make, each on its own and all together: whatever the intake accepts, the merged
   * user-data must be what cloud-init takes.
   */
  const PEM = `-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2xvdWQtaW5pdCB0ZXN0IGNlcnRpZmljYXRlMAoGCCqGSM49\n-----END CERTIFICATE-----\n`;
  const fragment: Required<NonNullable<CloudInitChoices['cloud_config']>> = {
    timezone: 'Europe/Paris',
    package_upgrade: true,
    ntp: { enabled: true, servers: ['ntp1.example.org'], pools: ['0.debian.pool.ntp.org'] },
    ca_certs: { remove_defaults: false, trusted: [PEM] },
    apt: { proxy: 'http://proxy.example.org:3128', https_proxy: 'http://proxy.example.org:3128' },
    final_message: 'pveflow: ready after $UPTIME seconds',
  };
  const choiceCases: Array<{ what: string; choices: CloudInitChoices }> = [
    { what: 'extra packages, one pinned', choices: { packages: ['nginx', 'python3-pip', 'htop=3.2.2-2'] } },
    { what: 'runcmd as shell lines and argument vectors', choices: { runcmd: ['echo "a: b" > /tmp/x', ['systemctl', 'enable', '--now', 'nginx'], '- {not: yaml} | >'] } },
    {
      what: 'write_files, text and base64, deferred, appended, owned',
      choices: {
        write_files: [
          { path: '/etc/motd', content: 'Welcome\n---\nkey: value\n' },
          { path: '/opt/app/config.b64', content: Buffer.from('secret: no').toString('base64'), encoding: 'b64', permissions: '0600' },
          { path: '/home/arrow/.bashrc', content: 'alias ll="ls -l"\n', append: true, defer: true, owner: 'arrow:arrow' },
        ],
      },
    },
    ...fragmentKeys.map((key) => ({ what: `a cloud-config fragment with ${key}`, choices: { cloud_config: { [key]: fragment[key] } } })),
    { what: 'everything at once', choices: { packages: ['nginx'], runcmd: ['echo done'], write_files: [{ path: '/etc/motd', content: 'hi' }], cloud_config: fragment } },
  ];

  for (const { what, choices } of choiceCases) {
    test(`the user-data merged with the request's choices is valid for cloud-init: ${what}`, async () => {
      const parsed = deviceRequestSchema.shape.cloudInit.safeParse(choices);
      assert.ok(parsed.success, `the intake accepts this case: ${JSON.stringify(parsed.error?.issues)}`);
      const { file, text, hostname } = await snippetOf(depsDhcp, 'kali', [ED25519], parsed.data);
      assertValid(cloudInitSchema(cloudInit as string, file), what, text);

      const doc = parse(text) as Record<string, any>;
      assert.equal(doc.hostname, hostname);
      assert.equal(doc.users.find((u: unknown) => typeof u === 'object').name, 'arrow', "pveflow's login is the one created");
      assert.deepEqual(doc.packages.slice(0, 3), ['qemu-guest-agent', 'curl', 'ca-certificates']);
      assert.deepEqual(doc.runcmd[0], ['systemctl', 'enable', '--now', 'qemu-guest-agent'], 'the guest agent comes first');
      assert.ok(netbirdEnrollmentOf(text), 'the guest still finds its NetBird enrolment');
      for (const p of choices.packages ?? []) assert.ok(doc.packages.includes(p), p);
      if (choices.runcmd) assert.deepEqual(doc.runcmd.slice(-choices.runcmd.length), choices.runcmd);
      if (choices.write_files)
        assert.deepEqual(
          doc.write_files.map((f: { path: string }) => f.path),
          choices.write_files.map((f) => f.path),
        );
      for (const [key, value] of Object.entries(choices.cloud_config ?? {})) assert.deepEqual(doc[key], value, key);
    });
  }

  test('the checker can fail: cloud-init refuses an upper-case hash type and an empty key list', () => {
    // Guards the test above against a cloud-init that accepts anything (or a wrapper that always exits 0).
    const bad = renderUserData({
      hostname: 'kali-vm-bad01',
      sshKeys: [],
      netbird: { managementUrl: 'https://netbird.example.test', setupKey: 'A'.repeat(36) },
      passwordHashes: { user: 'arrow', userHash: '$6$x$y', rootHash: '$6$x$y' },
    })
      .replace('type: hash', 'type: HASH')
      .replace('manage_etc_hosts: true', 'manage_etc_hosts: true\nssh_authorized_keys: []');
    const file = join(dir, 'bad-user-data.yaml');
    writeFileSync(file, bad);
    const verdict = cloudInitSchema(cloudInit as string, file);
    assert.notEqual(verdict.status, 0, verdict.output);
    assert.match(verdict.output, /HASH/);
    assert.match(verdict.output, /too short/);
  });
});
