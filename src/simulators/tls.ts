import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import selfsigned from 'selfsigned';

export interface SimulatorTls {
  /** PEM of the CA the clients trust (written to `caFile`). */
  ca: string;
  caFile: string;
  key: string;
  cert: string;
}

/**
 * A CA of the simulated world and a server certificate it signed for 127.0.0.1/localhost: the simulators speak
 * HTTPS like the real servers, and pveflow's clients verify them against this CA, exactly as they would verify a
 * cluster's `/etc/pve/pve-root-ca.pem`. Kept under the data dir so that a restart does not change the trust root.
 */
export async function simulatorTls(dir: string): Promise<SimulatorTls> {
  const files = { caFile: join(dir, 'sim-ca.pem'), caKey: join(dir, 'sim-ca.key'), key: join(dir, 'sim-server.key'), cert: join(dir, 'sim-server.pem') };
  if (Object.values(files).every((f) => existsSync(f))) {
    return { ca: readFileSync(files.caFile, 'utf8'), caFile: files.caFile, key: readFileSync(files.key, 'utf8'), cert: readFileSync(files.cert, 'utf8') };
  }
  const notAfterDate = new Date(Date.now() + 5 * 365 * 24 * 3600 * 1000);
  const ca = await selfsigned.generate([{ name: 'commonName', value: 'pveflow simulated cluster CA' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notAfterDate,
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    ],
  });
  const server = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec',
    algorithm: 'sha256',
    notAfterDate,
    ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [
          { type: 2, value: 'localhost' },
          { type: 7, ip: '127.0.0.1' },
        ],
      },
    ],
  });
  writeFileSync(files.caFile, ca.cert);
  writeFileSync(files.caKey, ca.private, { mode: 0o600 });
  writeFileSync(files.key, server.private, { mode: 0o600 });
  writeFileSync(files.cert, server.cert);
  return { ca: ca.cert, caFile: files.caFile, key: server.private, cert: server.cert };
}
