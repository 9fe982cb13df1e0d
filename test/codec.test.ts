import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { AesGcmPayloadCodec, CodecKeyError, ensureKeyFile, KeyRing, loadKeyRing, METADATA_KEY_ID, parseKeyFile, parseKeyList, payloadCodecFrom, PayloadDecryptionError, rotateKeyFile } from '../src/temporal/codec';

const dir = mkdtempSync(join(tmpdir(), 'pveflow-codec-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const SECRET = 'PVEAPIToken=pveflow@pve!automation=6a1c0c47-5b6e-4a53-9d7f-1c2b3d4e5f60';
const input = { serial: 'VM-7K2Q9', rootPassword: 'correct horse battery staple', token: SECRET };

const key = (id: string) => ({ id, key: randomBytes(32) });
const toPayload = (value: unknown): Payload => defaultPayloadConverter.toPayload(value);
const fromPayload = (p: Payload): unknown => defaultPayloadConverter.fromPayload(p);
const meta = (p: Payload, k: string) => Buffer.from(p.metadata?.[k] ?? []).toString();

describe('AesGcmPayloadCodec', () => {
  const k1 = key('k1');
  const codec = new AesGcmPayloadCodec(new KeyRing([k1]));

  test('a payload survives encode then decode unchanged, metadata included', async () => {
    const original = toPayload(input);
    const [encoded] = await codec.encode([original]);
    const [decoded] = await codec.decode([encoded!]);
    assert.deepEqual(fromPayload(decoded!), input);
    assert.equal(meta(decoded!, 'encoding'), 'json/plain');
  });

  test('an encoded payload contains none of the plaintext, only the key id', async () => {
    const [encoded] = await codec.encode([toPayload(input)]);
    const wire = Buffer.concat([...Object.values(encoded!.metadata ?? {}).map((v) => Buffer.from(v)), Buffer.from(encoded!.data ?? [])]).toString('latin1');
    for (const secret of [input.rootPassword, SECRET, '6a1c0c47', 'VM-7K2Q9', 'json/plain', 'horse']) {
      assert.ok(!wire.includes(secret), `'${secret}' is readable in the encoded payload`);
    }
    assert.equal(meta(encoded!, 'encoding'), 'binary/encrypted');
    assert.equal(meta(encoded!, METADATA_KEY_ID), 'k1');
  });

  test('the same value encrypts differently each time (fresh IV)', async () => {
    const [a, b] = await codec.encode([toPayload(input), toPayload(input)]);
    assert.notDeepEqual(Buffer.from(a!.data!), Buffer.from(b!.data!));
  });

  test('a flipped bit anywhere in the ciphertext is detected', async () => {
    const [encoded] = await codec.encode([toPayload(input)]);
    const data = Buffer.from(encoded!.data!);
    for (const at of [0, 12, Math.floor(data.length / 2), data.length - 1]) {
      const tampered = Buffer.from(data);
      tampered[at] = tampered[at]! ^ 0x01;
      await assert.rejects(codec.decode([{ ...encoded!, data: tampered }]), PayloadDecryptionError, `byte ${at}`);
    }
  });

  test('a payload relabelled with another key id in the ring fails authentication', async () => {
    const k2 = key('k2');
    const both = new AesGcmPayloadCodec(new KeyRing([k1, k2]));
    const [encoded] = await both.encode([toPayload(input)]);
    const relabelled = { ...encoded!, metadata: { ...encoded!.metadata, [METADATA_KEY_ID]: Buffer.from('k2') } };
    await assert.rejects(both.decode([relabelled]), /failed authentication with key 'k2'/);
  });

  test('a truncated payload is refused with a clear message', async () => {
    const [encoded] = await codec.encode([toPayload(input)]);
    await assert.rejects(codec.decode([{ ...encoded!, data: Buffer.from(encoded!.data!).subarray(0, 10) }]), /truncated/);
  });

  test('payloads written before encryption was switched on pass through decode', async () => {
    const plain = toPayload(input);
    const [decoded] = await codec.decode([plain]);
    assert.equal(decoded, plain);
  });

  test('rotation: new payloads use the active key, old payloads still decrypt', async () => {
    const before = new AesGcmPayloadCodec(new KeyRing([k1]));
    const [old] = await before.encode([toPayload('written with k1')]);
    const k2 = key('k2');
    const after = new AesGcmPayloadCodec(new KeyRing([k2, k1]));
    const [fresh] = await after.encode([toPayload('written with k2')]);
    assert.equal(meta(fresh!, METADATA_KEY_ID), 'k2');
    const [a, b] = await after.decode([old!, fresh!]);
    assert.equal(fromPayload(a!), 'written with k1');
    assert.equal(fromPayload(b!), 'written with k2');
  });

  test('a payload whose key left the ring fails naming the missing key id and what the ring holds', async () => {
    const [old] = await codec.encode([toPayload(input)]);
    const without = new AesGcmPayloadCodec(new KeyRing([key('k3'), key('k4')]));
    await assert.rejects(without.decode([old!]), (err: Error) => {
      assert.ok(err instanceof CodecKeyError);
      assert.match(err.message, /encrypted with key 'k1', which is not in the key ring \(it holds: k3, k4\)/);
      assert.match(err.message, /PVEFLOW_CODEC_KEYS or PVEFLOW_CODEC_KEY_FILE/);
      return true;
    });
  });
});

describe('key ring sources', () => {
  const b64 = () => randomBytes(32).toString('base64');

  test('PVEFLOW_CODEC_KEYS: the first key is active, all decrypt', () => {
    const ring = loadKeyRing({ keys: `new:${b64()}, old:${randomBytes(32).toString('base64url')}` })!;
    assert.equal(ring.active.id, 'new');
    assert.deepEqual(ring.ids, ['new', 'old']);
  });

  test('a key file as JSON or as lines with comments', () => {
    const a = b64();
    const json = parseKeyFile(JSON.stringify({ keys: [{ id: 'a', key: a }] }), 'keys.json');
    assert.equal(json[0]!.key.toString('base64'), a);
    const lines = parseKeyFile(`# rotated 2025-01\nb:${b64()}\n\na:${a}  # old\n`, 'keys.txt');
    assert.deepEqual(
      lines.map((k) => k.id),
      ['b', 'a'],
    );
  });

  test('bad keys are refused without quoting the key material', () => {
    const short = randomBytes(16).toString('base64');
    assert.throws(
      () => new KeyRing(parseKeyList(`k:${short}`)),
      (err: Error) => {
        assert.match(err.message, /'k' is 16 bytes; AES-256 needs exactly 32/);
        assert.ok(!err.message.includes(short));
        return true;
      },
    );
    assert.throws(() => parseKeyList('no-colon-here'), /is not 'id:base64key'/);
    assert.throws(() => parseKeyList('k:not base64!'), /not base64/);
    assert.throws(() => new KeyRing(parseKeyList(`k:${b64()},k:${b64()}`)), /appears twice/);
    assert.throws(() => new KeyRing(parseKeyList(`bad id:${b64()}`)), /not valid/);
    assert.throws(() => loadKeyRing({ keys: `k:${b64()}`, keyFile: '/x' }), /one place only/);
    assert.throws(() => loadKeyRing({ keyFile: join(dir, 'absent.json') }), /cannot read payload key file .*ENOENT/);
    assert.equal(loadKeyRing({}), undefined);
  });

  test('ensureKeyFile generates a private key file once, and later calls keep it', () => {
    const where = join(dir, 'data');
    const first = ensureKeyFile(where);
    assert.equal(first.created, true);
    assert.equal(statSync(first.path).mode & 0o777, 0o600);
    const content = readFileSync(first.path, 'utf8');
    const second = ensureKeyFile(where);
    assert.equal(second.created, false);
    assert.equal(readFileSync(second.path, 'utf8'), content);
    assert.equal(loadKeyRing({ keyFile: first.path })!.ids.length, 1);
  });

  test('rotateKeyFile puts a new active key first and keeps the old ones', async () => {
    const file = ensureKeyFile(join(dir, 'rotate')).path;
    const before = payloadCodecFrom({ keyFile: file })!;
    const [old] = await before.codec.encode([toPayload('before rotation')]);
    const rotated = rotateKeyFile(file);
    assert.notEqual(rotated.activeKeyId, before.activeKeyId);
    assert.deepEqual(rotated.keyIds.slice(1), [before.activeKeyId]);
    const after = payloadCodecFrom({ keyFile: file })!;
    assert.equal(after.activeKeyId, rotated.activeKeyId);
    assert.equal(fromPayload((await after.codec.decode([old!]))[0]!), 'before rotation');
  });

  test('payloadCodecFrom generates under the data dir only when no keys are configured', () => {
    const data = join(dir, 'embedded');
    const generated = payloadCodecFrom({}, { generateUnder: data })!;
    assert.match(generated.source, /codec-keys\.json \(generated\)/);
    assert.equal(payloadCodecFrom({}), undefined);
    const file = join(dir, 'given.txt');
    writeFileSync(file, `given:${b64()}\n`);
    assert.equal(payloadCodecFrom({ keyFile: file }, { generateUnder: data })!.activeKeyId, 'given');
  });
});
