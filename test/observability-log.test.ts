import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { describe, test } from 'node:test';
import { PveApiError } from '../src/clients/pve';
import { generateSshKeyPair } from '../src/clients/sftp';
import { createLogger, createRedactor, isSecretKey, type LoggerOptions } from '../src/observability';
import { SECRET_KEYS, secretKeyPaths } from '../src/observability/redact';
import { sdkLoggerFrom } from '../src/observability/sdkLogger';

/** Every secret pveflow handles, in the places a careless log call would put it: none may reach a line. */
const PVE_SECRET = randomUUID();
const PVE_AUTH = `PVEAPIToken=pveflow@pve!automation=${PVE_SECRET}`;
const NETBIRD_PAT = `nbp_${'Ab3'.repeat(12)}`;
const SETUP_KEY = randomUUID().toUpperCase();
const ROOT_PW = 'Yt7#generated-root-pw';
const SSH_KEY = generateSshKeyPair().privateKey;
const RSA_PEM = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
const SHA512_HASH = `$6$rounds=4096$saltsalt$${'x'.repeat(86)}`;
const BEARER = `Bearer ${'t0k3n'.repeat(6)}`;

const SECRETS = [PVE_SECRET, NETBIRD_PAT, SETUP_KEY, ROOT_PW, SHA512_HASH, BEARER.split(' ')[1]!];
const PEM_BODIES = [SSH_KEY, RSA_PEM].map((pem) => pem.split('\n')[2]!);

function capture(opts: LoggerOptions = {}) {
  const lines: string[] = [];
  const log = createLogger({ level: 'debug', write: (l) => lines.push(l), now: () => new Date('2025-01-01T00:00:00Z'), ...opts });
  return { log, lines, text: () => lines.join('') };
}

function assertClean(text: string) {
  for (const s of [...SECRETS, ...PEM_BODIES]) assert.ok(!text.includes(s), `secret leaked: ${s.slice(0, 12)}…\n${text}`);
}

describe('logger', () => {
  test('lines are one JSON object each with time, level, msg, bindings and fields', () => {
    const { log, lines } = capture({ name: 'worker' });
    log.child({ serial: 'VM-7K2Q9' }).info({ vmid: 10042, node: 'pve2' }, 'clone started');
    assert.equal(lines.length, 1);
    assert.ok(lines[0]!.endsWith('\n'));
    assert.deepEqual(JSON.parse(lines[0]!), {
      time: '2025-01-01T00:00:00.000Z',
      level: 'info',
      msg: 'clone started',
      name: 'worker',
      serial: 'VM-7K2Q9',
      vmid: 10042,
      node: 'pve2',
    });
  });

  test('lines below the level are dropped', () => {
    const { log, lines } = capture({ level: 'warn' });
    log.debug('x');
    log.info('x');
    log.warn('w');
    log.error('e');
    assert.deepEqual(
      lines.map((l) => JSON.parse(l).level),
      ['warn', 'error'],
    );
    assert.equal(log.isLevelEnabled('info'), false);
  });

  test('secrets in fields named like secrets never reach the output, at any depth', () => {
    const { log, text } = capture();
    log.info(
      {
        PVE_TOKEN_SECRET: PVE_SECRET,
        netbird: { token: NETBIRD_PAT, setupKey: SETUP_KEY },
        seeds: [{ root_pw: ROOT_PW }, { arrowPassword: ROOT_PW }],
        headers: { Authorization: BEARER, cookie: `s=${ROOT_PW}` },
        ssh: { privateKey: SSH_KEY },
        codec: { key: 'k1:AAAA' },
      },
      'config loaded',
    );
    assertClean(text());
    const line = JSON.parse(text());
    assert.equal(line.netbird.token, '[REDACTED]');
    assert.equal(line.seeds[0].root_pw, '[REDACTED]');
  });

  test('secrets with a known shape are cut out of any string: messages, errors, URLs, unnamed fields', () => {
    const { log, text } = capture();
    log.error(
      {
        detail: `authorization: ${BEARER}`,
        userData: `#cloud-config\npassword: ${SHA512_HASH}\nnetbird up --setup-key x ${NETBIRD_PAT}`,
        dump: `here is a key\n${SSH_KEY}\nand another ${RSA_PEM}`,
        truncated: SSH_KEY.slice(0, 120),
        err: new Error(`PVE said no to ${PVE_AUTH}`),
      },
      `request failed with ${PVE_AUTH}`,
    );
    assertClean(text());
    const line = JSON.parse(text());
    assert.match(line.msg, /PVEAPIToken=pveflow@pve!automation=\[REDACTED\]/, 'the token id stays for the operator');
    assert.equal(line.err.type, 'Error');
    assert.ok(line.err.stack.length > 0);
  });

  test('secret values given at start-up are cut out verbatim, wherever they appear', () => {
    const { log, text } = capture({ knownSecrets: [SETUP_KEY, ROOT_PW, 'short'] });
    log.warn({ note: `pw=${ROOT_PW}`, harmless: 'short words stay short' }, `peer joined with ${SETUP_KEY}`);
    assertClean(text());
    assert.match(text(), /short words stay short/, 'secrets under 8 characters are not searched for');
  });

  test("errors thrown by pveflow's clients log without the token", () => {
    const { log, text } = capture({ knownSecrets: [PVE_SECRET] });
    const err = new PveApiError({ method: 'GET', path: '/version', status: 401, reason: 'authentication failure', cause: new Error(PVE_AUTH) });
    log.error({ err }, 'Proxmox refused the token');
    assertClean(text());
    assert.match(text(), /authentication failure/);
  });

  test('cycles, buffers and reserved names do not break or falsify a line', () => {
    const { log, lines } = capture();
    const loop: Record<string, unknown> = { a: 1 };
    loop.self = loop;
    log.info({ loop, bytes: Buffer.from(ROOT_PW), level: 'error', msg: 'forged', time: 'never', big: 10n }, 'odd fields');
    const line = JSON.parse(lines[0]!);
    assert.equal(line.level, 'info');
    assert.equal(line.msg, 'odd fields');
    assert.equal(line.loop.self, '[Circular]');
    assert.equal(line.bytes, `[${ROOT_PW.length} bytes]`);
    assert.equal(line.big, '10');
    assertClean(lines[0]!);
  });
});

describe("pino's redaction", () => {
  test('objects interpolated into the message lose their secret keys and secret shapes', () => {
    const { log, lines } = capture();
    log.info('config %j from %s', { NETBIRD_TOKEN: NETBIRD_PAT, nested: { password: ROOT_PW, node: 'pve2' } }, PVE_AUTH);
    assertClean(lines.join(''));
    const { msg } = JSON.parse(lines[0]!);
    assert.match(msg, /"NETBIRD_TOKEN":"\[REDACTED\]"/);
    assert.match(msg, /"node":"pve2"/);
    assert.match(msg, /automation=\[REDACTED\]/);
  });

  test("a child's bindings are redacted like fields and cannot forge a line's level", () => {
    const { log, lines } = capture();
    log.child({ serial: 'VM-1', setupKey: SETUP_KEY, note: `via ${NETBIRD_PAT}`, level: 'fatal' }).warn('peer late');
    assertClean(lines.join(''));
    const line = JSON.parse(lines[0]!);
    assert.equal(line.level, 'warn');
    assert.equal(line.serial, 'VM-1');
    assert.equal(line.setupKey, '[REDACTED]');
  });

  test('every key pino redacts is a secret by name too, at each depth the paths reach', () => {
    for (const key of SECRET_KEYS) assert.ok(isSecretKey(key), key);
    const paths = secretKeyPaths();
    assert.ok(paths.includes('*.*.*.PVE_TOKEN_SECRET') && paths.includes('*.*["set-cookie"]'), paths.slice(0, 8).join(' '));
  });
});

describe("the Temporal SDK's log lines", () => {
  test('go through the same logger: level mapped, metadata kept as fields, secrets redacted', () => {
    const { log, lines, text } = capture({ level: 'info', name: 'worker' });
    const sdk = sdkLoggerFrom(log);
    sdk.info('Worker state changed', { sdkComponent: 'worker', taskQueue: 'pveflow', state: 'RUNNING' });
    sdk.warn(`activity failed: ${PVE_AUTH}`, { activityType: 'cloneTemplate', password: ROOT_PW });
    sdk.log('ERROR', 'workflow task failed', { error: `token ${NETBIRD_PAT}` });
    sdk.trace('dropped below info');
    sdk.debug('dropped below info');
    const parsed = lines.map((l) => JSON.parse(l));
    assert.deepEqual(
      parsed.map((l) => [l.level, l.msg.split(':')[0], l.name, l.sdk]),
      [
        ['info', 'Worker state changed', 'worker', true],
        ['warn', 'activity failed', 'worker', true],
        ['error', 'workflow task failed', 'worker', true],
      ],
    );
    assert.equal(parsed[0].taskQueue, 'pveflow');
    assert.equal(parsed[1].activityType, 'cloneTemplate');
    assertClean(text());
  });
});

describe('redaction rules', () => {
  test('secret names match across naming styles; ids and public names do not', () => {
    for (const k of ['token', 'PVE_TOKEN_SECRET', 'tokenSecret', 'netbird-token', 'setupKey', 'setup_key', 'password', 'root_pw', 'privateKey', 'authorization', 'Authorization', 'key', 'apiKey', 'passphrase']) {
      assert.ok(isSecretKey(k), k);
    }
    for (const k of ['tokenId', 'PVE_TOKEN_ID', 'keyId', 'serial', 'vmid', 'node', 'status', 'consultants']) {
      assert.ok(!isSecretKey(k), k);
    }
  });

  test('the redactor copies: the logged object is left untouched', () => {
    const input = { token: NETBIRD_PAT, nested: { note: PVE_AUTH } };
    const out = createRedactor()(input) as typeof input;
    assert.equal(input.token, NETBIRD_PAT);
    assert.equal(out.token, '[REDACTED]');
    assert.ok(!out.nested.note.includes(PVE_SECRET));
  });
});
