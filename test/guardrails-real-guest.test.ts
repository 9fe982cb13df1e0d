import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { parse } from 'yaml';
import { renderUserData } from '../src/activities/snippets/cloudInit';
import { generateGuestCredentials, sha512Crypt } from '../src/activities/snippets/guestCredentials';
import { createDeviceRequestBody } from '../src/contracts/apiSchemas';
import { badRequest } from '../src/api/http/problems';
import { NetbirdClient } from '../src/clients/netbird';
import { choiceLimitRefusals, defaultChoiceLimits } from '../src/domain/choiceLimits';
import { cloudInitHardLimits, type CloudInitChoices } from '../src/domain/cloudInitChoices';
import { deviceNames } from '../src/domain/deviceNames';
import type { GuestCredentials } from '../src/domain/guestCredentials';
import { realGuestPrerequisites } from '../src/simulators/pve';
import { APT_REPO_GUEST_ADDRESS, APT_REPO_GUEST_PORT, MARKER_PACKAGE, startLocalAptRepo, type LocalAptRepo } from './support/localAptRepo';
import { NETBIRD_ADDRESS, NETBIRD_PORT, netbirdUnavailable, startNetbirdServer, type NetbirdServer } from './support/netbirdServer';
import { guestImage, runnableOrSkip, sshRun, startRealGuestWorld, type RealGuestVm, type RealGuestWorld } from './support/realGuest';

/**
 * Issue 28 part 2, on a real guest: the most aggressive first boot the allowlist of docs/images-and-choices.md still
 * accepts, rendered as pveflow renders it (a real one-off setup key of NetBird's own server for a device group, the
 * SHA-512 crypt hashes of freshly generated passwords), booted by the PVE simulator in real-guest mode with the
 * NetBird server and a Debian repository of the test's own reachable through QEMU guestfwd rules.
 *
 * What is promised (docs/images-and-choices.md, "First boot"), and shown here: nothing a request ADDS
 * DECLARATIVELY — packages, write_files to every allowed place (including the login user's home, the apt sources, the
 * login banners, /usr/local/etc and /usr/local/share), every allowed cloud_config key with values chosen to hurt —
 * breaks the guest agent (ping, interfaces with an IPv4, exec), the VPN enrolment (the peer in NetBird's /api/peers,
 * connected, in the setup key's group) or the generated logins (SSH with the requester's key as the login user,
 * the hashes in /etc/shadow verify against the generated passwords, sudo and su with them work). For `runcmd` the
 * promise is narrower: pveflow's own steps (agent enabled, NetBird enrolled) have run when the request's first command
 * starts, and a command cannot take their place (a fake `netbird` put first on PATH afterwards receives nothing).
 *
 * What is NOT promised: a request's commands run as root, after pveflow's, and can break their own VM like any root
 * shell can (`systemctl stop qemu-guest-agent`, `netbird down`, `passwd -l arrow`); none of those is tried here,
 * since their outcome is the command's, not the guard rails'. The same holds for a package repository a request
 * adds: its packages' maintainer scripts run as root, and with `package_upgrade` a repository of the request's own
 * could replace the agent's or OpenSSH's package; the one here serves only the marker package.
 *
 * Fixed in pveflow while writing this test: a file written under the login's home before the login existed left
 * that home root's on the guest, so the login could not write to it (files under /home/ are now always deferred by
 * the merge); `ca_certs.remove_defaults: true` empties the CA bundle that NetBird's install and an https management
 * URL are verified with (now refused, cloud-config-value; not shown on the guest, whose management URL is http).
 *
 * The negative control needs no guest: the probes of the issue (swap over /etc/shadow, a tmpfs over /etc/ssh, files
 * over NetBird's binary or the agent's unit, prototype keys) are refused, each naming its rule, by the same schema
 * and the same 400 the API answers with.
 */
const NODE = 'pve1';
const TEMPLATE = 9000;
const VMID = 311;
const SERIAL = 'GR-7Q2X';
const BOOT_WAIT_MS = 15 * 60_000;
const PREFIX = 'guardrails-guest';

const reasonNotRunnable = realGuestPrerequisites() ?? netbirdUnavailable();
let dir = '';
let realWorld: RealGuestWorld | undefined;
let vm: RealGuestVm;
let netbirdServer: NetbirdServer | undefined;
let netbird: NetbirdClient | undefined;
let repo: LocalAptRepo | undefined;
let keyFile = '';

/** What the API's own 400 says about `cloud_init`: the issues it would answer with, or none. */
function intakeIssues(cloudInit: unknown): Array<{ field: string; reason: string; rule?: string }> {
  const parsed = createDeviceRequestBody.shape.cloud_init.safeParse(cloudInit);
  if (parsed.success) return choiceLimitRefusals(defaultChoiceLimits, { cloudInit: parsed.data as CloudInitChoices });
  let answer: { issues: Array<{ field: string; reason: string; rule?: string }> } = { issues: [] };
  const res = { status: () => res, json: (body: typeof answer) => (answer = body) };
  badRequest(res as never, parsed.error, 'body', (f) => `cloud_init.${f}`);
  return answer.issues;
}

test('the guard-rail probes of issue 28 are refused with 400 naming the rule', () => {
  const refused: Array<[string, unknown, string, string]> = [
    ['swap over /etc/shadow', { cloud_config: { swap: { filename: '/etc/shadow', size: 'auto' } } }, 'cloud_init.cloud_config.swap', 'cloud-config-key'],
    ['a tmpfs over /etc/ssh', { cloud_config: { mounts: [['tmpfs', '/etc/ssh', 'tmpfs', 'defaults', '0', '0']] } }, 'cloud_init.cloud_config.mounts', 'cloud-config-key'],
    ['bootcmd', { cloud_config: { bootcmd: ['systemctl mask qemu-guest-agent'] } }, 'cloud_init.cloud_config.bootcmd', 'cloud-config-key'],
    ["NetBird's binary", { write_files: [{ path: '/usr/local/bin/netbird', content: '#!/bin/sh\n' }] }, 'cloud_init.write_files.0.path', 'protected-path'],
    ["the agent's unit", { write_files: [{ path: '/etc/systemd/system/qemu-guest-agent.service', content: '[Service]\n' }] }, 'cloud_init.write_files.0.path', 'protected-path'],
    ["the agent's unit under /lib", { write_files: [{ path: '/lib/systemd/system/qemu-guest-agent.service', content: '[Service]\n' }] }, 'cloud_init.write_files.0.path', 'protected-path'],
    ['a .ssh under /home', { write_files: [{ path: '/home/arrow/.ssh/authorized_keys', content: 'ssh-ed25519 AAAA x' }] }, 'cloud_init.write_files.0.path', 'protected-path'],
    ['/usr/local/bin, first on PATH', { write_files: [{ path: '/usr/local/bin/curl', content: '#!/bin/sh\n' }] }, 'cloud_init.write_files.0.path', 'path-not-allowed'],
    ['a .. segment', { write_files: [{ path: '/opt/../etc/shadow', content: '' }] }, 'cloud_init.write_files.0.path', 'path-not-normalised'],
    ['the users', { cloud_config: { users: [{ name: 'arrow', lock_passwd: true }] } }, 'cloud_init.cloud_config.users', 'pveflow-key'],
    // Refused since this guest showed them ending cloud-init in error (console-setup absent; Debian's locale-gen).
    ['keyboard', { cloud_config: { keyboard: { layout: 'de', model: 'pc105', variant: 'nodeadkeys', options: 'ctrl:swapcaps' } } }, 'cloud_init.cloud_config.keyboard', 'cloud-config-key'],
    ['locale', { cloud_config: { locale: 'en_GB.UTF-8' } }, 'cloud_init.cloud_config.locale', 'cloud-config-key'],
    ['the CA bundle emptied', { cloud_config: { ca_certs: { remove_defaults: true } } }, 'cloud_init.cloud_config.ca_certs.remove_defaults', 'cloud-config-value'],
    ['constructor', JSON.parse('{"cloud_config":{"constructor":{}}}'), 'cloud_init.cloud_config.constructor', 'cloud-config-key'],
    ['toString', JSON.parse('{"cloud_config":{"toString":"x"}}'), 'cloud_init.cloud_config.toString', 'cloud-config-key'],
    ['hasOwnProperty', JSON.parse('{"cloud_config":{"hasOwnProperty":1}}'), 'cloud_init.cloud_config.hasOwnProperty', 'cloud-config-key'],
    ['a JSON __proto__', JSON.parse('{"cloud_config":{"__proto__":{"users":[]}}}'), 'cloud_init.cloud_config.__proto__', 'cloud-config-key'],
  ];
  for (const [what, cloudInit, field, rule] of refused) {
    const issues = intakeIssues(cloudInit);
    const issue = issues.find((i) => i.field === field);
    assert.ok(issue, `${what}: refused naming ${field}; the intake answered ${JSON.stringify(issues)}`);
    assert.equal(issue.rule, rule, `${what}: the rule`);
    assert.ok(issue.reason.length > 20, `${what}: a reason a person can act on (${issue.reason})`);
  }
});

/** A self-signed certificate (made by openssl here): accepted by `ca_certs.trusted`, added to the guest's bundle. */
function selfSignedPem(): string {
  const key = join(dir, 'ca.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-subj', '/CN=hostile request CA', '-days', '2', '-out', join(dir, 'ca.pem')], {
    stdio: 'ignore',
  });
  return readFileSync(join(dir, 'ca.pem'), 'utf8');
}

/**
 * The most aggressive choices the allowlist accepts: every cloud_config key, every place write_files may reach
 * (with what is there on a Debian guest overwritten), the counts at the configured limits and the size near
 * CLOUD_INIT_MAX_BYTES. What each one tries is said beside it.
 */
function aggressiveChoices(login: string, sourcesFile: { path: string; content: string }): CloudInitChoices {
  const banner = 'pveflow says nothing here; ' + 'x'.repeat(60) + '\n';
  const runcmd: CloudInitChoices['runcmd'] = [
    // What pveflow promises of runcmd: its steps have run when the request's begin. Recorded as the first command.
    ['sh', '-c', '{ systemctl is-active qemu-guest-agent; netbird status; id -un ' + login + '; } > /var/tmp/at-request-runcmd 2>&1'],
    // A netbird first on PATH, put there by a command: it runs after pveflow's `netbird up`, so it receives nothing.
    ['sh', '-c', 'printf \'#!/bin/sh\\necho "$@" > /var/tmp/stolen-setup-key\\n\' > /usr/local/bin/netbird && chmod 0755 /usr/local/bin/netbird'],
    // A service of the request's own, as the doc says: under /opt, enabled from runcmd.
    ['systemctl', 'enable', '--now', '/opt/app/app.service'],
  ];
  // The rest, up to the configured count, with long arguments: the snippet grows towards the byte limit.
  while (runcmd.length < defaultChoiceLimits.runcmd) runcmd.push(['sh', '-c', `echo '${'y'.repeat(300)}' >> /var/tmp/request-runcmd-${runcmd.length}`]);
  return {
    // The marker package from the test's repository, and pveflow's own packages named again (merged, not doubled).
    packages: [MARKER_PACKAGE, 'qemu-guest-agent', 'openssh-server', 'sudo', 'curl', 'ca-certificates'],
    runcmd,
    write_files: [
      // The login banners overwritten, one large.
      { path: '/etc/motd', content: banner.repeat(120), permissions: '0600' },
      { path: '/etc/issue', content: '\\S \\n \\l ' + '`reboot` $(poweroff) {{ v1.hostname }}\n' },
      // A repository (the test's own, so that `packages` can be shown to install) and garbage where apt reads keys.
      { ...sourcesFile, permissions: '0644' },
      { path: '/etc/apt/trusted.gpg.d/hostile.gpg', content: Buffer.from('not a keyring at all').toString('base64'), encoding: 'b64', permissions: '0000' },
      { path: '/etc/apt/keyrings/hostile.asc', content: '-----BEGIN PGP PUBLIC KEY BLOCK-----\ngarbage\n-----END PGP PUBLIC KEY BLOCK-----\n' },
      // The login user's home: written before the user exists (not deferred), and its shell start-up file (deferred).
      { path: `/home/${login}/early/notes.txt`, content: 'written before the login user exists\n', permissions: '0600' },
      { path: `/home/${login}/.bashrc`, content: 'echo request-bashrc-ran >&2\nexport PATH=/tmp/request-bin:$PATH\n', owner: `${login}:${login}`, permissions: '0755', defer: true },
      // A unit of the request's own, enabled by runcmd, and configuration and a CA where update-ca-certificates looks.
      { path: '/opt/app/app.service', content: '[Unit]\nDescription=request app\n[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n' },
      { path: '/usr/local/share/ca-certificates/hostile.crt', content: 'not a certificate\n' },
      { path: '/usr/local/etc/hostile.conf', content: 'z'.repeat(4000), append: true },
    ],
    cloud_config: {
      timezone: 'Pacific/Kiritimati',
      package_upgrade: true,
      ntp: { enabled: true, servers: ['10.0.2.2'], pools: ['pool.invalid'] },
      ca_certs: { remove_defaults: false, trusted: [selfSignedPem()] },
      // Only for https: the test's repository is http and the guest has no other.
      apt: { https_proxy: 'http://proxy.invalid:3128' },
      final_message: ('#cloud-config\nusers: []\n`reboot` $(poweroff) $UPTIME ' + '%'.repeat(40)).slice(0, 1024),
    },
  };
}

before(async () => {
  if (reasonNotRunnable) return;
  dir = mkdtempSync(join(tmpdir(), 'guardrails-guest-'));
  const image = guestImage({ netbird: true });

  netbirdServer = await startNetbirdServer({ prefix: PREFIX });
  netbird = new NetbirdClient({ baseUrl: netbirdServer.apiUrl, token: netbirdServer.token });
  repo = await startLocalAptRepo();
  const guestForwards = [
    { address: NETBIRD_ADDRESS, port: NETBIRD_PORT, command: netbirdServer.guestForwardCommand },
    { address: APT_REPO_GUEST_ADDRESS, port: APT_REPO_GUEST_PORT, command: `socat - TCP:127.0.0.1:${repo.hostPort}` },
  ];
  realWorld = await startRealGuestWorld(dir, image, guestForwards);
  vm = realWorld.vm({ node: NODE, vmid: VMID, bootWaitMs: BOOT_WAIT_MS, failureContext: () => `NetBird's server log ends:\n${netbirdServer?.log().slice(-2000)}` });
  keyFile = join(dir, 'requester');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'requester@test', '-f', keyFile]);
});

after(async () => {
  await realWorld?.stop();
  await netbird?.close();
  await netbirdServer?.stop();
  await repo?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('a guest booted with the most aggressive accepted choices keeps its agent, its VPN enrolment and its logins', { timeout: 45 * 60_000 }, async (t) => {
  if (!runnableOrSkip(t, reasonNotRunnable, 'the guard rails cannot be shown on a real guest here')) return;
  const nb = netbird!;
  const names = deviceNames(SERIAL, 'hostile');
  const credentials: GuestCredentials = generateGuestCredentials();
  const choices = aggressiveChoices(credentials.username, repo!.writeFile);

  // 1. The intake accepts every part of it: the API's own schema and the configured limits.
  assert.deepEqual(intakeIssues(choices), [], 'the allowlist accepts the aggressive choices');
  for (const field of ['packages', 'runcmd', 'write_files'] as const) assert.deepEqual(intakeIssues({ [field]: choices[field] }), [], `${field} alone is accepted`);
  for (const [key, value] of Object.entries(choices.cloud_config!)) assert.deepEqual(intakeIssues({ cloud_config: { [key]: value } }), [], `cloud_config.${key} alone is accepted`);
  assert.equal(choices.runcmd!.length, defaultChoiceLimits.runcmd, 'runcmd at CLOUD_INIT_MAX_RUNCMD');
  assert.equal(choices.write_files!.length, defaultChoiceLimits.writeFiles, 'write_files at CLOUD_INIT_MAX_WRITE_FILES');
  const bytes = Buffer.byteLength(JSON.stringify(choices));
  assert.ok(bytes > defaultChoiceLimits.bytes * 0.75 && bytes <= defaultChoiceLimits.bytes, `${bytes} bytes, near CLOUD_INIT_MAX_BYTES (${defaultChoiceLimits.bytes})`);
  assert.ok(bytes <= cloudInitHardLimits.fragmentBytes);

  // 2. The user-data as prepareCloudInit renders it: a device group, a one-off setup key for it, hashed passwords.
  const group = await nb.createGroup({ name: names.deviceGroup });
  const setupKey = await nb.createSetupKey({ name: names.setupKey, type: 'one-off', expires_in: 86_400, auto_groups: [group.id], usage_limit: 1, ephemeral: false });
  const userData = renderUserData({
    hostname: names.hostname,
    sshKeys: [readFileSync(`${keyFile}.pub`, 'utf8').trim()],
    netbird: { managementUrl: netbirdServer!.managementUrl, setupKey: setupKey.key },
    passwordHashes: { user: credentials.username, userHash: await sha512Crypt(credentials.password), rootHash: await sha512Crypt(credentials.rootPassword) },
    choices,
  });
  const rendered = parse(userData) as Record<string, unknown>;
  assert.equal(rendered.final_message, choices.cloud_config!.final_message, 'the fragment is data in the YAML, not directives');
  assert.equal((rendered.write_files as unknown[]).length, choices.write_files!.length, 'every file passed the merge');

  // 3. The VM as pveflow makes it: linked clone, snippet over SFTP, cicustom, start.
  await vm.cloneWithSnippet(TEMPLATE, names.hostname, names.snippetFile, userData);
  const started = Date.now();
  const guest = await vm.start();

  // 4. The guest agent answers: ping, an IPv4 on eth0, exec.
  const ipv4 = await vm.bootedToAddress();
  t.diagnostic(`agent reported ${ipv4} after ${Math.round((Date.now() - started) / 1000)} s (${guest.accel})`);
  await vm.api('POST', `/nodes/${NODE}/qemu/${VMID}/agent/ping`, {});
  await vm.waitFor('cloud-init to finish (boot-finished)', async () => (await vm.readGuestFile('/var/lib/cloud/instance/boot-finished').catch(() => undefined)) !== undefined);
  t.diagnostic(`cloud-init finished after ${Math.round((Date.now() - started) / 1000)} s`);
  assert.deepEqual(await vm.guestExec(['systemctl', 'is-active', 'qemu-guest-agent']), { exitcode: 0, out: 'active\n' }, 'the agent runs, and exec answers');
  assert.equal(await vm.readGuestFile('/var/lib/cloud/instance/user-data.txt'), userData, 'the guest read pveflow’s rendering byte for byte');

  // 5. The VPN enrolment: the peer is in the real server's /api/peers, connected, in the setup key's group.
  let peer: Awaited<ReturnType<NetbirdClient['peersNamed']>>[number] | undefined;
  await vm.waitFor('the guest to appear connected in NetBird', async () => {
    peer = (await nb.peersNamed(names.hostname)).find((p) => p.connected);
    return peer !== undefined;
  });
  assert.ok(
    peer!.groups.some((g) => g.id === group.id),
    `the peer is in ${names.deviceGroup}: ${JSON.stringify(peer!.groups)}`,
  );
  assert.equal((await nb.getSetupKey(setupKey.id)).used_times, 1, 'the one-off key was used, once');
  assert.equal(await vm.readGuestFile('/var/tmp/stolen-setup-key').catch(() => 'absent'), 'absent', 'the netbird a command put on PATH afterwards received nothing');
  const atRuncmd = await vm.readGuestFile('/var/tmp/at-request-runcmd');
  assert.match(atRuncmd, /^active\n/, `the agent was active when the request's first command ran: ${atRuncmd}`);
  assert.match(atRuncmd, /Management: Connected/, `NetBird was enrolled when the request's first command ran: ${atRuncmd}`);

  // 6. The generated logins: the hashes verify against the passwords, SSH with the key lands as the login user, sudo and su work.
  // Subtests from here: each one's failure is reported, and the others still run on the booted guest.
  await t.test('the hashes in /etc/shadow verify against the generated passwords', async () => {
    const shadow = await vm.readGuestFile('/etc/shadow');
    const { verify } = await import('unixcrypt');
    for (const [user, password] of [
      [credentials.username, credentials.password],
      ['root', credentials.rootPassword],
    ] as const) {
      const hash = new RegExp(`^${user}:([^:]+):`, 'm').exec(shadow)?.[1] ?? '';
      assert.ok(hash.startsWith('$6$'), `${user} has a SHA-512 crypt hash in /etc/shadow`);
      assert.equal(verify(password, hash), true, `the generated password of ${user} verifies against /etc/shadow`);
      assert.equal(verify(`${password}x`, hash), false, 'and another does not');
    }
  });
  await t.test('SSH with the requester’s key lands as the login user; sudo and su take the generated passwords', async () => {
    const whoami = await sshRun(keyFile, 'arrow', guest, 'id -un');
    assert.equal(whoami.status, 0, `SSH as ${credentials.username} through 127.0.0.1:${guest.ssh.port}: ${whoami.stderr}`);
    assert.equal(whoami.stdout.trim(), credentials.username);
    const sudo = await sshRun(keyFile, 'arrow', guest, 'sudo -S -k -p "" id -un', `${credentials.password}\n`);
    assert.equal(sudo.stdout.trim(), 'root', `sudo with the generated password: ${sudo.stderr}`);
    const wrong = await sshRun(keyFile, 'arrow', guest, 'sudo -S -k -p "" id -un', `${credentials.password}x\n`);
    assert.notEqual(wrong.stdout.trim(), 'root', 'sudo refuses another password');
    // su reads the password from a terminal: script(1) gives it one. The password is typed once su has asked (typed
    // earlier, su's switch of the terminal to no-echo would discard it).
    const su = await sshRun(keyFile, 'arrow', guest, `read -r pw; { sleep 10; printf '%s\\n' "$pw"; } | script -qec "su -c 'id -un' root" /dev/null`, `${credentials.rootPassword}\n`);
    assert.match(su.stdout, /^root\r?$/m, `su with the generated root password: ${su.stdout} ${su.stderr}`);
    // The home the login user got is its own, although a file was written into it before the user existed.
    const home = await sshRun(keyFile, 'arrow', guest, 'stat -c %U:%G ~ && touch ~/written-by-login && echo writable');
    assert.equal(home.stdout, `${credentials.username}:${credentials.username}\nwritable\n`, `the login's home is its own: ${home.stdout} ${home.stderr}`);
  });

  // 7. The declarative additions landed (they were applied, not dropped), and cloud-init's verdict.
  await t.test('the request’s additions were applied', async () => {
    assert.deepEqual(await vm.guestExec(['dpkg-query', '-W', '-f', '${Status}', MARKER_PACKAGE]), { exitcode: 0, out: 'install ok installed' }, 'the request’s package installed');
    assert.match(await vm.readGuestFile('/etc/motd'), /^pveflow says nothing here/);
    assert.deepEqual(await vm.guestExec(['systemctl', 'is-active', 'app.service']), { exitcode: 0, out: 'active\n' }, 'the request’s own unit, enabled from runcmd');
  });
  // cloud-init ends `error`, not `done`, for one of the request's keys and for a reason of this box, not of pveflow's
  // part: `ntp.enabled` installs chrony, and the guest has no Debian mirror. Every other module, pveflow's among them
  // (users, passwords, SSH keys, packages, write_files, ca-certs, runcmd), ran without an error. (`keyboard` and
  // `locale`, which failed here for reasons of the image, are refused at intake: see the probes above.)
  await t.test('cloud-init finished; its only error is that of the request’s ntp', async () => {
    const result = JSON.parse(await vm.readGuestFile('/run/cloud-init/result.json')) as { v1: { errors: string[] } };
    const failed = result.v1.errors.map((e) => /^\('([a-z_-]+)'/.exec(e)?.[1] ?? e).sort();
    t.diagnostic(`cloud-init errors: ${result.v1.errors.join('\n')}`);
    assert.deepEqual(failed, ['ntp'], `the modules that failed: ${result.v1.errors.join('\n')}`);
    assert.match(result.v1.errors.join('\n'), /install', 'chrony'/);
  });
});
