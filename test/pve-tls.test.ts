import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { PveApiError, PveClient } from '../src/clients/pve';
import { ConfigError, loadConfig } from '../src/config';
import { createPveSimulator, defaultClusterSeed, zeroTiming } from '../src/simulators/pve';
import { simulatorTls, type SimulatorTls } from '../src/simulators/tls';

/**
 * TLS to Proxmox as an operator of a real cluster needs it: verified against the cluster CA, or pinned to the node
 * certificate's SHA-256 fingerprint (what GET /nodes shows as ssl_fingerprint), never silently unverified — and
 * skipping verification refused outright in production.
 */
describe('TLS to Proxmox', () => {
  let dir: string;
  let tls: SimulatorTls;
  let endpoint: string;
  let close: () => Promise<void>;
  const secret = 'tls-test-token-secret';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pveflow-tls-'));
    tls = await simulatorTls(dir);
    const sim = createPveSimulator({ seed: defaultClusterSeed({ tokenSecret: secret }), timing: zeroTiming, snippetsDir: () => dir });
    const server = await sim.listen({ host: '127.0.0.1', port: 0, tls });
    endpoint = new URL(server.url).origin;
    close = server.close;
  });
  after(async () => {
    await close?.();
    rmSync(dir, { recursive: true, force: true });
  });

  const client = (o: { ca?: string; fingerprint?: string; insecureSkipVerify?: boolean }) => new PveClient({ endpoint, tokenId: 'pveflow@pve!automation', tokenSecret: secret, timeoutMs: 5_000, ...o });

  async function version(c: PveClient): Promise<string | PveApiError> {
    try {
      return (await c.version()).version;
    } catch (err) {
      assert.ok(err instanceof PveApiError, String(err));
      return err;
    } finally {
      await c.close();
    }
  }

  test('the cluster CA verifies the node; without it the certificate is refused as a transport error', async () => {
    assert.equal(typeof (await version(client({ ca: tls.ca }))), 'string');
    const refused = await version(client({}));
    assert.ok(refused instanceof PveApiError);
    assert.equal(refused.errorClass, 'transport');
    assert.match(refused.message, /certificate|verify|signature/i);
  });

  test('a pinned SHA-256 fingerprint is accepted without the CA; another fingerprint is refused with both named', async () => {
    const pin = new X509Certificate(tls.cert).fingerprint256; // AA:BB:... as PVE shows it in ssl_fingerprint
    assert.equal(typeof (await version(client({ fingerprint: pin }))), 'string');
    const wrong = pin.replace(/^../, pin.startsWith('00') ? '11' : '00');
    const refused = await version(client({ fingerprint: wrong }));
    assert.ok(refused instanceof PveApiError);
    assert.match(refused.message, new RegExp(`does not match the pinned PVE_FINGERPRINT ${wrong}`));
  });

  test('skipping verification works in development and is refused at start-up in production, saying why', async () => {
    const base = { PVE_ENDPOINT: 'https://pve.example:8006', PVE_TOKEN_ID: 'pveflow@pve!automation', PVE_TOKEN_SECRET: 'x', PVE_INSECURE_SKIP_VERIFY: 'true' };
    assert.equal(loadConfig(base).PVE_INSECURE_SKIP_VERIFY, true);
    assert.equal(typeof (await version(client({ insecureSkipVerify: true }))), 'string', 'development may skip verification');
    assert.throws(
      () => loadConfig({ ...base, NODE_ENV: 'production', PVEFLOW_CODEC_KEYS: `k1:${Buffer.alloc(32, 1).toString('base64')}` }),
      (err: Error) => err instanceof ConfigError && /refused when NODE_ENV=production/.test(err.message) && /PVE_CA_FILE/.test(err.message) && /PVE_FINGERPRINT/.test(err.message),
    );
  });

  test('a fingerprint that is not a SHA-256 colon-hex value is refused by the configuration', () => {
    assert.throws(() => loadConfig({ PVE_FINGERPRINT: 'AA:BB' }), /PVE_FINGERPRINT: must be the SHA-256 fingerprint/);
  });
});
