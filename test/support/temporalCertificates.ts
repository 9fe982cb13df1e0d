import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import selfsigned, { type SubjectAltNameEntry } from 'selfsigned';

/**
 * A test's own PKI for a Temporal cluster run with mTLS: a CA, the server's certificate (the frontend's and the
 * internode one, which the server's own system worker also presents as its client certificate, so it carries both
 * serverAuth and clientAuth), and a client certificate for pveflow's processes, the `temporal` CLI and Temporal UI's
 * server. Files as an operator would mount them; the keys 0600.
 */
export interface TemporalCertificates {
  dir: string;
  caFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  clientCertFile: string;
  clientKeyFile: string;
  /** The name the server's certificate is issued to, besides localhost and 127.0.0.1: compose's service name. */
  serverName: string;
}

const SERVER_NAME = 'temporal';

export async function makeTemporalCertificates(dir: string): Promise<TemporalCertificates> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const notAfterDate = new Date(Date.now() + 24 * 3600 * 1000);
  const ca = await selfsigned.generate([{ name: 'commonName', value: 'pveflow test Temporal CA' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notAfterDate,
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ],
  });
  const leaf = (commonName: string, usage: { serverAuth?: boolean; clientAuth?: boolean }, altNames: SubjectAltNameEntry[]) =>
    selfsigned.generate([{ name: 'commonName', value: commonName }], {
      keyType: 'ec',
      algorithm: 'sha256',
      notAfterDate,
      ca: { key: ca.private, cert: ca.cert },
      extensions: [
        { name: 'basicConstraints', cA: false },
        { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
        { name: 'extKeyUsage', ...usage },
        ...(altNames.length ? [{ name: 'subjectAltName' as const, altNames }] : []),
      ],
    });
  const server = await leaf('temporal', { serverAuth: true, clientAuth: true }, [
    { type: 2, value: SERVER_NAME },
    { type: 2, value: 'localhost' },
    { type: 7, ip: '127.0.0.1' },
  ]);
  const client = await leaf('pveflow', { clientAuth: true }, []);
  const files = {
    caFile: join(dir, 'ca.pem'),
    serverCertFile: join(dir, 'server.pem'),
    serverKeyFile: join(dir, 'server.key'),
    clientCertFile: join(dir, 'client.pem'),
    clientKeyFile: join(dir, 'client.key'),
  };
  writeFileSync(files.caFile, ca.cert);
  writeFileSync(files.serverCertFile, server.cert);
  writeFileSync(files.serverKeyFile, server.private, { mode: 0o600 });
  writeFileSync(files.clientCertFile, client.cert);
  writeFileSync(files.clientKeyFile, client.private, { mode: 0o600 });
  return { dir, ...files, serverName: SERVER_NAME };
}

/** The variables Temporal's CLI and pveflow read to connect over mTLS with the client certificate. */
export function temporalClientTlsEnv(certs: TemporalCertificates): Record<string, string> {
  return {
    TEMPORAL_TLS_SERVER_CA_CERT_PATH: certs.caFile,
    TEMPORAL_TLS_SERVER_NAME: certs.serverName,
    TEMPORAL_TLS_CLIENT_CERT_PATH: certs.clientCertFile,
    TEMPORAL_TLS_CLIENT_KEY_PATH: certs.clientKeyFile,
  };
}
