import assert from 'node:assert/strict';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Agent, fetch } from 'undici';
import { parse } from 'yaml';
import { renderUserData } from '../src/activities/snippets/cloudInit';
import { generateGuestCredentials, sha512Crypt } from '../src/activities/snippets/guestCredentials';
import { createDeviceRequestBody } from '../src/contracts/apiSchemas';
import { badRequest } from '../src/api/http/problems';
import { NetbirdClient } from '../src/clients/netbird';
import { PveClient } from '../src/clients/pve';
import { SftpClient } from '../src/clients/sftp';
import { choiceLimitRefusals, defaultChoiceLimits } from '../src/domain/choiceLimits';
import { cloudInitHardLimits, type CloudInitChoices } from '../src/domain/cloudInitChoices';
import { deviceNames } from '../src/domain/deviceNames';
import type { GuestCredentials } from '../src/domain/guestCredentials';
import { simulatorTimings } from '../src/embedded/simulatorTimings';
import { realGuestPrerequisites, type RealGuestInfo } from '../src/simulators/pve';
import { SNIPPETS_DIR, startSimulatedWorld, type SimulatedWorld } from '../src/simulators/world';
import { APT_REPO_GUEST_ADDRESS, APT_REPO_GUEST_PORT, MARKER_PACKAGE, startLocalAptRepo, type LocalAptRepo } from './support/localAptRepo';
import { NETBIRD_ADDRESS, NETBIRD_PORT, netbirdUnavailable, startNetbirdServer, type NetbirdServer } from './support/netbirdServer';

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
let world: SimulatedWorld | undefined;
let netbirdServer: NetbirdServer | undefined;
let netbird: NetbirdClient | undefined;
let repo: LocalAptRepo | undefined;
let pve: PveClient;
let agent: Agent;
let keyFile = '';
let guest: RealGuestInfo | undefined;

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
      locale: 'en_GB.UTF-8',
      keyboard: { layout: 'de', model: 'pc105', variant: 'nodeadkeys', options: 'ctrl:swapcaps' },
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
  const build = spawnSync('bash', ['scripts/build-guest-image.sh'], { encoding: 'utf8', timeout: 20 * 60_000 });
  if (build.status !== 0) throw new Error(`scripts/build-guest-image.sh failed (${build.status}): ${build.stderr.slice(-3000)}`);
  const image = build.stdout.trim().split('\n').at(-1)!;
  const manifest = JSON.parse(readFileSync(join(image, 'manifest.json'), 'utf8')) as { netbirdClient?: { present: boolean } };
  if (!manifest.netbirdClient?.present) throw new Error(`the guest image ${image} has no NetBird client: run bash scripts/install-netbird.sh, then this test again`);

  netbirdServer = await startNetbirdServer({ prefix: PREFIX });
  netbird = new NetbirdClient({ baseUrl: netbirdServer.apiUrl, token: netbirdServer.token });
  repo = await startLocalAptRepo();
  const guestForwards = [
    { address: NETBIRD_ADDRESS, port: NETBIRD_PORT, command: netbirdServer.guestForwardCommand },
    { address: APT_REPO_GUEST_ADDRESS, port: APT_REPO_GUEST_PORT, command: `socat - TCP:127.0.0.1:${repo.hostPort}` },
  ];
  world = await startSimulatedWorld({ dir: join(dir, 'world'), timing: simulatorTimings.fast, realGuests: { image, guestForwards } });
  const ca = readFileSync(world.env.PVE_CA_FILE, 'utf8');
  pve = new PveClient({ endpoint: world.env.PVE_ENDPOINT, tokenId: world.env.PVE_TOKEN_ID, tokenSecret: world.env.PVE_TOKEN_SECRET, ca, timeoutMs: 60_000 });
  agent = new Agent({ connect: { ca } });
  keyFile = join(dir, 'requester');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'requester@test', '-f', keyFile]);
});

after(async () => {
  await world?.stop();
  await netbird?.close();
  await netbirdServer?.stop();
  await repo?.stop();
  await pve?.close();
  await agent?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('a guest booted with the most aggressive accepted choices keeps its agent, its VPN enrolment and its logins', { timeout: 45 * 60_000 }, async (t) => {
  if (reasonNotRunnable) {
    // Never silently: in CI this machine must run the test; elsewhere the skip says why.
    if (process.env.CI) assert.fail(`the guard rails cannot be shown on a real guest here: ${reasonNotRunnable}`);
    t.skip(`the guard rails cannot be shown on a real guest here: ${reasonNotRunnable}`);
    return;
  }
  const w = world!;
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
  await task(await pve.cloneVm(NODE, TEMPLATE, { newid: VMID, name: names.hostname, pool: 'pveflow' }));
  const [host, port] = w.env.SSH_NODES.split(',')
    .find((n) => n.startsWith(`${NODE}=`))!
    .slice(NODE.length + 1)
    .split(':');
  const fingerprint = w.env.SSH_HOST_FINGERPRINTS.split(',')
    .find((n) => n.startsWith(`${NODE}=`))!
    .slice(NODE.length + 1);
  const sftp = new SftpClient({ host: host!, port: Number(port), username: w.env.SSH_USER, privateKey: readFileSync(w.env.SSH_PRIVATE_KEY_FILE, 'utf8'), hostKeyFingerprint: fingerprint });
  await sftp.upload(`${SNIPPETS_DIR}/${names.snippetFile}`, userData);
  await sftp.close();
  await task(await pve.updateVmConfig(NODE, VMID, { cicustom: `user=local:snippets/${names.snippetFile}`, ipconfig0: 'ip=dhcp' }));
  const started = Date.now();
  await task(await pve.vmPower(NODE, VMID, 'start'));
  guest = w.pve.realGuest(VMID);
  assert.ok(guest, 'the started VM runs a real guest');

  // 4. The guest agent answers: ping, an IPv4 on eth0, exec.
  const ipv4 = await bootedToAddress();
  t.diagnostic(`agent reported ${ipv4} after ${Math.round((Date.now() - started) / 1000)} s (${guest.accel})`);
  await api('POST', `/nodes/${NODE}/qemu/${VMID}/agent/ping`, {});
  await waitFor('cloud-init to finish (boot-finished)', async () => (await readGuestFile('/var/lib/cloud/instance/boot-finished').catch(() => undefined)) !== undefined);
  t.diagnostic(`cloud-init finished after ${Math.round((Date.now() - started) / 1000)} s`);
  assert.deepEqual(await guestExec(['systemctl', 'is-active', 'qemu-guest-agent']), { exitcode: 0, out: 'active\n' }, 'the agent runs, and exec answers');
  assert.equal(await readGuestFile('/var/lib/cloud/instance/user-data.txt'), userData, 'the guest read pveflow’s rendering byte for byte');

  // 5. The VPN enrolment: the peer is in the real server's /api/peers, connected, in the setup key's group.
  let peer: Awaited<ReturnType<NetbirdClient['peersNamed']>>[number] | undefined;
  await waitFor('the guest to appear connected in NetBird', async () => {
    peer = (await nb.peersNamed(names.hostname)).find((p) => p.connected);
    return peer !== undefined;
  });
  assert.ok(
    peer!.groups.some((g) => g.id === group.id),
    `the peer is in ${names.deviceGroup}: ${JSON.stringify(peer!.groups)}`,
  );
  assert.equal((await nb.getSetupKey(setupKey.id)).used_times, 1, 'the one-off key was used, once');
  assert.equal(await readGuestFile('/var/tmp/stolen-setup-key').catch(() => 'absent'), 'absent', 'the netbird a command put on PATH afterwards received nothing');
  const atRuncmd = await readGuestFile('/var/tmp/at-request-runcmd');
  assert.match(atRuncmd, /^active\n/, `the agent was active when the request's first command ran: ${atRuncmd}`);
  assert.match(atRuncmd, /Management: Connected/, `NetBird was enrolled when the request's first command ran: ${atRuncmd}`);

  // 6. The generated logins: the hashes verify against the passwords, SSH with the key lands as the login user, sudo and su work.
  // Subtests from here: each one's failure is reported, and the others still run on the booted guest.
  await t.test('the hashes in /etc/shadow verify against the generated passwords', async () => {
    const shadow = await readGuestFile('/etc/shadow');
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
    const whoami = await sshRun(guest!, 'id -un');
    assert.equal(whoami.status, 0, `SSH as ${credentials.username} through 127.0.0.1:${guest!.ssh.port}: ${whoami.stderr}`);
    assert.equal(whoami.stdout.trim(), credentials.username);
    const sudo = await sshRun(guest!, 'sudo -S -k -p "" id -un', `${credentials.password}\n`);
    assert.equal(sudo.stdout.trim(), 'root', `sudo with the generated password: ${sudo.stderr}`);
    const wrong = await sshRun(guest!, 'sudo -S -k -p "" id -un', `${credentials.password}x\n`);
    assert.notEqual(wrong.stdout.trim(), 'root', 'sudo refuses another password');
    // su reads the password from a terminal: script(1) gives it one. The password is typed once su has asked (typed
    // earlier, su's switch of the terminal to no-echo would discard it).
    const su = await sshRun(guest!, `read -r pw; { sleep 10; printf '%s\\n' "$pw"; } | script -qec "su -c 'id -un' root" /dev/null`, `${credentials.rootPassword}\n`);
    assert.match(su.stdout, /^root\r?$/m, `su with the generated root password: ${su.stdout} ${su.stderr}`);
    // The home the login user got is its own, although a file was written into it before the user existed.
    const home = await sshRun(guest!, 'stat -c %U:%G ~ && touch ~/written-by-login && echo writable');
    assert.equal(home.stdout, `${credentials.username}:${credentials.username}\nwritable\n`, `the login's home is its own: ${home.stdout} ${home.stderr}`);
  });

  // 7. The declarative additions landed (they were applied, not dropped), and cloud-init's verdict.
  await t.test('the request’s additions were applied', async () => {
    assert.deepEqual(await guestExec(['dpkg-query', '-W', '-f', '${Status}', MARKER_PACKAGE]), { exitcode: 0, out: 'install ok installed' }, 'the request’s package installed');
    assert.match(await readGuestFile('/etc/motd'), /^pveflow says nothing here/);
    assert.deepEqual(await guestExec(['systemctl', 'is-active', 'app.service']), { exitcode: 0, out: 'active\n' }, 'the request’s own unit, enabled from runcmd');
  });
  // cloud-init ends `error`, not `done`, for three of the request's keys and for reasons of the image and of this
  // box, not of pveflow's part: on Debian 12, `keyboard` restarts console-setup, which the image does not carry;
  // `locale` runs Debian's locale-gen, which ignores its argument, so a locale not in /etc/locale.gen is never made;
  // `ntp.enabled` installs chrony, and the guest has no Debian mirror. Every other module, pveflow's among them
  // (users, passwords, SSH keys, packages, write_files, ca-certs, runcmd), ran without an error.
  await t.test('cloud-init finished; its only errors are those of the request’s keyboard, locale and ntp', async () => {
    const result = JSON.parse(await readGuestFile('/run/cloud-init/result.json')) as { v1: { errors: string[] } };
    const failed = result.v1.errors.map((e) => /^\('([a-z_-]+)'/.exec(e)?.[1] ?? e).sort();
    t.diagnostic(`cloud-init errors: ${result.v1.errors.join('\n')}`);
    assert.deepEqual(failed, ['keyboard', 'locale', 'ntp'], `the modules that failed: ${result.v1.errors.join('\n')}`);
    assert.match(result.v1.errors.join('\n'), /console-setup/);
    assert.match(result.v1.errors.join('\n'), /update-locale/);
    assert.match(result.v1.errors.join('\n'), /install', 'chrony'/);
  });
});

async function task(upid: string | null): Promise<void> {
  if (!upid) return;
  await waitFor(`task ${upid}`, async () => (await pve.taskStatus(upid)).status === 'stopped', 15 * 60_000, 500);
  const status = await pve.taskStatus(upid);
  if (status.exitstatus !== 'OK') assert.fail(`task ${upid} ended ${status.exitstatus}: ${(await pve.taskLogTail(upid)).join('\n')}`);
}

async function bootedToAddress(): Promise<string> {
  let address = '';
  await waitFor('the guest agent to report an IPv4 address', async () => {
    const interfaces = await pve.guestNetworkInterfaces(NODE, VMID).catch(() => undefined);
    const eth0 = interfaces?.result.find((i) => i.name === 'eth0');
    address = eth0?.['ip-addresses']?.find((a) => a['ip-address-type'] === 'ipv4')?.['ip-address'] ?? '';
    return address !== '';
  });
  return address;
}

/** `GET .../agent/file-read` (raw: pveflow's client has no call for it). */
async function readGuestFile(file: string): Promise<string> {
  const reply = await api('GET', `/nodes/${NODE}/qemu/${VMID}/agent/file-read?file=${encodeURIComponent(file)}`);
  return (reply as { content: string }).content;
}

/** `POST .../agent/exec`, then `exec-status` until it exited. */
async function guestExec(command: string[]): Promise<{ exitcode: number; out: string }> {
  const { pid } = (await api('POST', `/nodes/${NODE}/qemu/${VMID}/agent/exec`, { command })) as { pid: number };
  let status: { exited: number | boolean; exitcode?: number; 'out-data'?: string } = { exited: 0 };
  await waitFor(`'${command.join(' ')}' in the guest`, async () => {
    status = (await api('GET', `/nodes/${NODE}/qemu/${VMID}/agent/exec-status?pid=${pid}`)) as typeof status;
    return Boolean(status.exited);
  });
  return { exitcode: status.exitcode ?? -1, out: status['out-data'] ?? '' };
}

async function api(method: 'GET' | 'POST', path: string, json?: unknown): Promise<unknown> {
  const w = world!;
  const res = await fetch(`${w.env.PVE_ENDPOINT}/api2/json${path}`, {
    method,
    dispatcher: agent,
    headers: { authorization: `PVEAPIToken=${w.env.PVE_TOKEN_ID}=${w.env.PVE_TOKEN_SECRET}`, ...(json ? { 'content-type': 'application/json' } : {}) },
    body: json ? JSON.stringify(json) : undefined,
    signal: AbortSignal.timeout(60_000),
  });
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${res.statusText}`);
  return ((await res.json()) as { data: unknown }).data;
}

/** The system's ssh client with the requester's key, as the login user (asynchronous: the simulator serves from this process). */
function sshRun(info: RealGuestInfo, command: string, input?: string): Promise<{ status: number; stdout: string; stderr: string }> {
  const args = ['-i', keyFile, '-p', String(info.ssh.port), '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=30'];
  return new Promise((done) => {
    const child = execFile('ssh', [...args, `arrow@${info.ssh.host}`, command], { encoding: 'utf8', timeout: 120_000 }, (err, stdout, stderr) => {
      done({ status: err ? (typeof err.code === 'number' ? err.code : 255) : 0, stdout, stderr });
    });
    child.stdin?.end(input ?? '');
  });
}

/** Polls `check` until true; past the deadline it fails quoting the end of the guest's serial console. */
async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = BOOT_WAIT_MS, everyMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) {
      const log = guest && existsSync(guest.serialLog) ? readFileSync(guest.serialLog, 'utf8').split('\n').slice(-40).join('\n') : '(no serial console log)';
      assert.fail(`waited ${Math.round(timeoutMs / 1000)} s for ${what}; the guest's serial console ends:\n${log}\nNetBird's server log ends:\n${netbirdServer?.log().slice(-2000)}`);
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
