import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { generateSshKeyPair, sshFingerprint } from '../src/clients/sftp';

/**
 * Every generated key must load in OpenSSH: ssh2's generator writes about 1 ed25519 key in 100 with a 31-byte public
 * key, which sshd then refuses as a host key. 400 draws make such a key all but certain to appear if unguarded.
 */
test('400 generated ed25519 key pairs all load in OpenSSH and match their public halves', (t) => {
  if (spawnSync('ssh-keygen', ['-?']).error) return t.skip('ssh-keygen not installed (apt-get install -y openssh-client)');
  const dir = mkdtempSync(join(tmpdir(), 'pveflow-keys-'));
  try {
    for (let i = 0; i < 400; i++) {
      const pair = generateSshKeyPair(`k${i}`);
      const file = join(dir, 'key');
      writeFileSync(file, pair.privateKey, { mode: 0o600 });
      // -y loads the private key (as sshd does) and prints its public half.
      const loaded = spawnSync('ssh-keygen', ['-y', '-f', file], { encoding: 'utf8' });
      assert.equal(loaded.status, 0, `key ${i} refused by OpenSSH: ${loaded.stderr}`);
      assert.equal(loaded.stdout.split(' ').slice(0, 2).join(' '), pair.publicKey.split(' ').slice(0, 2).join(' '));
      assert.equal(sshFingerprint(loaded.stdout.trim()), sshFingerprint(pair.publicKey));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
