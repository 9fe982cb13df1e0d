import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createSecureServer, type Http2SecureServer, type IncomingHttpHeaders, type ServerHttp2Session } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ConfigError, loadConfig } from '../src/config';
import { createLogger } from '../src/observability';
import { connectToTemporal, temporalAccessFrom, temporalSecrets, type TemporalAccess } from '../src/temporal/access';
import { connectWorkerToTemporal } from '../src/temporal/workerConnection';
import { makeTemporalCertificates, temporalClientTlsEnv } from './support/temporalCertificates';

/**
 * How pveflow reaches a Temporal frontend (src/config.ts, src/temporal/access.ts): TLS, a client certificate, an API key,
 * from the variables Temporal's own CLI reads; the settings that cannot work together are refused at start-up, naming
 * them, and production refuses plaintext unless the operator says so.
 */
const dir = mkdtempSync(join(tmpdir(), 'pveflow-temporal-access-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, content: string) => {
  const path = join(dir, name);
  writeFileSync(path, content, { mode: 0o600 });
  return path;
};
const caPath = file('ca.pem', '-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n');
const certPath = file('client.pem', '-----BEGIN CERTIFICATE-----\nCLIENT\n-----END CERTIFICATE-----\n');
const keyPath = file('client.key', '-----BEGIN PRIVATE KEY-----\nS3CRETKEYMATERIAL\n-----END PRIVATE KEY-----\n');
const apiKey = 'tcld-api-key-0123456789abcdef0123456789';
const apiKeyPath = file('api-key', `${apiKey}\n`);

/** What production needs besides Temporal's transport, so that only the rule under test can refuse. */
const production = { NODE_ENV: 'production', METRICS_TOKEN: 'metrics-token-0123456789', PVEFLOW_CODEC_KEYS: `k1:${Buffer.alloc(32, 7).toString('base64')}` };

function refused(env: Record<string, string>, pattern: RegExp): void {
  assert.throws(
    () => loadConfig(env),
    (err: Error) => err instanceof ConfigError && pattern.test(err.message),
    `refused with ${pattern}`,
  );
}

describe('Temporal transport settings', () => {
  test('production refuses a plaintext TEMPORAL_ADDRESS, naming the ways out; TEMPORAL_ALLOW_PLAINTEXT=true accepts it', () => {
    refused(
      { ...production, TEMPORAL_ADDRESS: 'temporal:7233' },
      /TEMPORAL_ADDRESS=temporal:7233 without TLS is refused when NODE_ENV=production.*TEMPORAL_TLS_CLIENT_CERT_PATH.*TEMPORAL_API_KEY_FILE.*TEMPORAL_ALLOW_PLAINTEXT=true/s,
    );
    refused({ ...production, TEMPORAL_ADDRESS: 'temporal:7233', TEMPORAL_TLS: 'false' }, /without TLS is refused/);
    assert.equal(loadConfig({ ...production, TEMPORAL_ADDRESS: 'temporal:7233', TEMPORAL_ALLOW_PLAINTEXT: 'true' }).TEMPORAL_ALLOW_PLAINTEXT, true);
    assert.doesNotThrow(() => loadConfig({ ...production, TEMPORAL_ADDRESS: 'temporal:7233', TEMPORAL_TLS_CLIENT_CERT_PATH: certPath, TEMPORAL_TLS_CLIENT_KEY_PATH: keyPath }));
    assert.doesNotThrow(() => loadConfig({ ...production, TEMPORAL_ADDRESS: 'ns.acct.tmprl.cloud:7233', TEMPORAL_API_KEY_FILE: apiKeyPath }));
    assert.doesNotThrow(() => loadConfig({ ...production, TEMPORAL_ADDRESS: 'temporal:7233', TEMPORAL_TLS: 'true' }), 'TLS alone is not plaintext');
    // Outside production plaintext stays the default (the dev server, a laptop's cluster).
    assert.doesNotThrow(() => loadConfig({ TEMPORAL_ADDRESS: 'temporal:7233' }));
  });

  test('a client certificate without its key, or a key without its certificate, is refused naming both', () => {
    refused({ TEMPORAL_ADDRESS: 't:7233', TEMPORAL_TLS_CLIENT_CERT_PATH: certPath }, /TEMPORAL_TLS_CLIENT_CERT_PATH is set without TEMPORAL_TLS_CLIENT_KEY_PATH/);
    refused({ TEMPORAL_ADDRESS: 't:7233', TEMPORAL_TLS_CLIENT_KEY_PATH: keyPath }, /TEMPORAL_TLS_CLIENT_KEY_PATH is set without TEMPORAL_TLS_CLIENT_CERT_PATH/);
  });

  test('an API key implies TLS: with TEMPORAL_TLS=false it is refused; given twice it is refused', () => {
    refused({ TEMPORAL_ADDRESS: 't:7233', TEMPORAL_API_KEY: apiKey, TEMPORAL_TLS: 'false' }, /TEMPORAL_API_KEY is set with TEMPORAL_TLS=false: an API key is sent only over TLS/);
    refused({ TEMPORAL_ADDRESS: 't:7233', TEMPORAL_API_KEY_FILE: apiKeyPath, TEMPORAL_TLS: 'no' }, /TEMPORAL_API_KEY_FILE is set with TEMPORAL_TLS=false/);
    refused({ TEMPORAL_ADDRESS: 't:7233', TEMPORAL_API_KEY: apiKey, TEMPORAL_API_KEY_FILE: apiKeyPath }, /TEMPORAL_API_KEY and TEMPORAL_API_KEY_FILE are both set/);
    const access = temporalAccessFrom(loadConfig({ TEMPORAL_ADDRESS: 't:7233', TEMPORAL_API_KEY: apiKey }));
    assert.deepEqual(access.connection, { address: 't:7233', tls: {}, apiKey }, 'TLS on, with the system CAs');
  });

  test('TLS settings with TEMPORAL_TLS=false, or without a TEMPORAL_ADDRESS (the plaintext dev server), are refused', () => {
    refused({ TEMPORAL_ADDRESS: 't:7233', TEMPORAL_TLS: 'false', TEMPORAL_TLS_SERVER_CA_CERT_PATH: caPath }, /TEMPORAL_TLS_SERVER_CA_CERT_PATH is set with TEMPORAL_TLS=false/);
    refused({ TEMPORAL_TLS_CLIENT_CERT_PATH: certPath, TEMPORAL_TLS_CLIENT_KEY_PATH: keyPath }, /without TEMPORAL_ADDRESS/);
  });

  test('mTLS: the CA, the server name and the client pair are read into the options both connections take', () => {
    const access = temporalAccessFrom(
      loadConfig({ TEMPORAL_ADDRESS: '127.0.0.1:7233', TEMPORAL_TLS_SERVER_CA_CERT_PATH: caPath, TEMPORAL_TLS_SERVER_NAME: 'temporal', TEMPORAL_TLS_CLIENT_CERT_PATH: certPath, TEMPORAL_TLS_CLIENT_KEY_PATH: keyPath }),
    );
    assert.equal(access.security, 'mTLS');
    assert.ok(access.connection.tls);
    const tls = access.connection.tls;
    assert.equal(tls.serverNameOverride, 'temporal');
    assert.match(tls.serverRootCACertificate!.toString(), /\nCA\n/);
    assert.match(tls.clientCertPair!.crt.toString(), /\nCLIENT\n/);
    assert.match(tls.clientCertPair!.key.toString(), /S3CRETKEYMATERIAL/);
    assert.equal(access.connection.apiKey, undefined);
    assert.deepEqual(temporalAccessFrom(loadConfig({ TEMPORAL_ADDRESS: 't:7233' })).connection, { address: 't:7233', tls: false });
    assert.equal(temporalAccessFrom(loadConfig({ TEMPORAL_ADDRESS: 't:7233' })).security, 'plaintext');
  });

  test('an unreadable file is a configuration error naming the setting and the path, never a content', () => {
    assert.throws(
      () => temporalAccessFrom(loadConfig({ TEMPORAL_ADDRESS: 't:7233', TEMPORAL_TLS_CLIENT_CERT_PATH: certPath, TEMPORAL_TLS_CLIENT_KEY_PATH: join(dir, 'missing.key') })),
      (err: Error) => err instanceof ConfigError && /TEMPORAL_TLS_CLIENT_KEY_PATH: cannot read .*missing\.key \(ENOENT\)/.test(err.message),
    );
    assert.throws(() => temporalAccessFrom(loadConfig({ TEMPORAL_ADDRESS: 't:7233', TEMPORAL_API_KEY_FILE: file('empty-key', '\n') })), /TEMPORAL_API_KEY_FILE .* is empty/);
  });

  test('the API key from its file, trimmed; neither it nor the client key reaches a log line', () => {
    const access = temporalAccessFrom(loadConfig({ TEMPORAL_ADDRESS: 't:7233', TEMPORAL_API_KEY_FILE: apiKeyPath, TEMPORAL_TLS_CLIENT_CERT_PATH: certPath, TEMPORAL_TLS_CLIENT_KEY_PATH: keyPath }));
    assert.equal(access.connection.apiKey, apiKey);
    assert.equal(access.security, 'mTLS + API key');
    const lines: string[] = [];
    const log = createLogger({ write: (l) => lines.push(l), knownSecrets: temporalSecrets(access) });
    // The worst a careless line could do: the whole options object, the key in a message, the config itself.
    log.info({ connection: access.connection }, `connecting with ${access.connection.apiKey}`);
    log.info({ config: { TEMPORAL_API_KEY: apiKey } }, 'config');
    log.error({ err: new Error(`refused: ${apiKey} / ${access.connection.tls && access.connection.tls.clientCertPair!.key.toString()}`) }, 'failed');
    const text = lines.join('\n');
    assert.ok(lines.length === 3);
    assert.ok(!text.includes(apiKey), text);
    assert.ok(!text.includes('S3CRETKEYMATERIAL'), text);
  });
});

/**
 * What reaches the frontend, seen from its side: a gRPC server over TLS that asks for a client certificate, records
 * what each call carried and answers UNAUTHENTICATED. The client's and the worker's connections (two SDK
 * implementations, TypeScript and Rust) must both present the certificate and the API key that access.ts gave them.
 */
describe('what a Temporal connection presents to the frontend', () => {
  interface Seen {
    path: string;
    authorization?: string;
    clientCertificate?: string;
  }

  async function frontend(certs: Awaited<ReturnType<typeof makeTemporalCertificates>>): Promise<{ server: Http2SecureServer; address: string; seen: Seen[]; stop: () => void }> {
    const seen: Seen[] = [];
    const server = createSecureServer({
      cert: readFileSync(certs.serverCertFile),
      key: readFileSync(certs.serverKeyFile),
      ca: readFileSync(certs.caFile),
      requestCert: true,
      rejectUnauthorized: false,
      allowHTTP1: false,
    });
    const sessions = new Set<ServerHttp2Session>();
    server.on('session', (session) => {
      sessions.add(session);
      session.once('close', () => sessions.delete(session));
    });
    server.on('stream', (stream, headers: IncomingHttpHeaders) => {
      const peer = (stream.session?.socket as TLSSocket | undefined)?.getPeerCertificate();
      seen.push({ path: String(headers[':path']), authorization: String(headers.authorization), clientCertificate: peer?.subject?.CN ? String(peer.subject.CN) : undefined });
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '16', 'grpc-message': 'refused by the test' }, { endStream: true });
    });
    await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
    const port = (server.address() as { port: number }).port;
    const stop = () => {
      server.close();
      for (const session of sessions) session.destroy();
    };
    return { server, address: `127.0.0.1:${port}`, seen, stop };
  }

  test('mTLS and an API key: both connections present the client certificate and "authorization: Bearer <key>"', { timeout: 60_000 }, async () => {
    const certs = await makeTemporalCertificates(join(dir, 'pki'));
    const { address, seen, stop } = await frontend(certs);
    try {
      const access: TemporalAccess = temporalAccessFrom(loadConfig({ TEMPORAL_ADDRESS: address, ...temporalClientTlsEnv(certs), TEMPORAL_API_KEY_FILE: apiKeyPath }));
      assert.equal(access.security, 'mTLS + API key');
      await assert.rejects(connectToTemporal(access), /Failed to connect to Temporal server|UNAUTHENTICATED/);
      const fromClient = seen.splice(0);
      assert.ok(fromClient.length > 0, 'the client called the frontend');
      for (const call of fromClient) assert.deepEqual({ authorization: call.authorization, cert: call.clientCertificate }, { authorization: `Bearer ${apiKey}`, cert: 'pveflow' }, call.path);

      await connectWorkerToTemporal(access).then(
        (c) => c.close(),
        () => undefined,
      );
      assert.ok(seen.length > 0, 'the worker connection called the frontend');
      for (const call of seen) assert.deepEqual({ authorization: call.authorization, cert: call.clientCertificate }, { authorization: `Bearer ${apiKey}`, cert: 'pveflow' }, call.path);
    } finally {
      stop();
    }
  });
});
