import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { guestLogTail, redactGuestLog } from '../src/domain/guestLog';

// A failure's message lands in Temporal's history and the console: the guest log it quotes must carry no secret.
describe('guest log redaction', () => {
  const key = '3F1C2B9A-7D4E-4C1B-9A2F-0E5D6C7B8A91';

  test('a setup key on the netbird command line is gone, however it is written', () => {
    for (const line of [
      `+ netbird up --management-url https://nb.example --setup-key ${key} --hostname vm1`,
      `+ netbird up --setup-key=${key}`,
      `+ netbird up --setup-key '${key}'`,
      `+ netbird up --setup-key not-a-uuid-but-secret`,
      `+ netbird up -k ${key}`,
      `NB_SETUP_KEY=${key}`,
    ]) {
      const out = redactGuestLog(line);
      assert.ok(!out.includes(key) && !out.includes(key.toLowerCase()) && !out.includes('not-a-uuid-but-secret'), out);
      assert.match(out, /\[redacted\]/);
    }
    assert.match(redactGuestLog(`+ netbird up --setup-key ${key} --hostname vm1`), /--hostname vm1$/, 'what follows the key stays');
  });

  test('password hashes and key=value secrets are gone; ordinary lines stay as they were', () => {
    const hash = '$6$rounds=4096$saltsalt$Xq1Y0bZc2e3f4g5h6i7j8k9l0m';
    assert.ok(!redactGuestLog(`passwd: ${hash}`).includes('saltsalt'));
    assert.ok(!redactGuestLog(`chpasswd: consultant:${hash}`).includes('Xq1Y0bZ'));
    assert.equal(redactGuestLog('password: hunter2'), 'password: [redacted]');
    const plain = 'Cloud-init v. 24.1 finished at Mon, 07 Dec 2026 09:00:00 +0000. Datasource DataSourceNoCloud.  Up 41.2 seconds';
    assert.equal(redactGuestLog(plain), plain);
  });

  test('the tail is the last lines, capped in size, redacted before it is cut', () => {
    const lines = Array.from({ length: 100 }, (_, i) => `line ${i}`);
    const tail = guestLogTail(`${lines.join('\n')}\n\n`, 40);
    assert.equal(tail.split('\n').length, 40);
    assert.equal(tail.split('\n')[0], 'line 60');
    assert.equal(tail.split('\n').at(-1), 'line 99');

    const long = guestLogTail(`${'x'.repeat(10_000)}\nnetbird up --setup-key ${key}`, 40, 100);
    assert.equal(long.length, 100);
    assert.ok(long.startsWith('…') && long.endsWith('--setup-key [redacted]'), long);
    assert.ok(!long.includes(key.slice(-12)), 'no piece of a cut-through key');
  });
});
