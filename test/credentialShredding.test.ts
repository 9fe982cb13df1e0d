import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { Client } from '@temporalio/client';
import { revealCredentials } from '../src/api/day2/credentialReveal';
import { CredentialKeys } from '../src/credentials/credentialKeys';
import { completeUpdate, revealCredentialsUpdate } from '../src/contracts/messages';
import { defaultRequestPolicy, policyDefaults } from '../src/domain/requestPolicyRules';
import { waitFor } from './support/waitFor';
import { historyPlaintext } from './support/historyText';
import { useWorkflowHarness } from './support/workflowHarness';
import { requestDriver } from './support/requestDriver';

/**
 * "Credentials are shown once" (issue 18): after the consultant's reveal, and after the request's end, no history
 * holds the guest's passwords in a form anyone can open. The histories are read here as the test server stores them,
 * without a payload codec: exactly what an operator holding the codec keys would see once /codec decrypted them.
 */

describe('guest credentials are crypto-shredded', () => {
  const harness = useWorkflowHarness();
  const keysDir = mkdtempSync(join(tmpdir(), 'pveflow-credential-keys-'));
  after(() => rmSync(keysDir, { recursive: true, force: true }));

  /** Every history of the request: the request itself, its build and, once it ran, its cleanup. */
  async function histories(client: Client, serial: string): Promise<string> {
    const texts: string[] = [];
    for (const id of [`vm-request-${serial}`, `vm-build-${serial}-1`, `vm-completion-${serial}`]) {
      const history = await client.workflow
        .getHandle(id)
        .fetchHistory()
        .catch(() => undefined); // no cleanup yet
      if (history) texts.push(historyPlaintext(history));
    }
    return texts.join('\n');
  }

  test('without a re-fetch window, after the reveal and after completion no history, key or answer opens the passwords', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const serial = 'VM-CS001';
    const world = await harness.h.world({}, { CREDENTIAL_KEYS_DIR: keysDir });
    const keys = new CredentialKeys(keysDir);
    const { client } = harness.h.env;
    await harness.h.withWorker(world, `shred-${serial}`, async () => {
      // REQUEST_REVEAL_REFETCH_MIN=0: shredded at the first reveal.
      const policy = { ...defaultRequestPolicy, revealRefetchMinutes: 0 };
      const { handle, waitForStatus } = await requestDriver(client, `shred-${serial}`).startApproved(await harness.h.request(serial), { policy });
      await waitForStatus('Fulfilled', { timeoutMs: 120_000 });
      assert.ok(await keys.read(serial), 'the sealing key exists until the reveal');

      const logins = await revealCredentials(client, keys, serial, handle.workflowId, 'alice@consultancy.example', (fn) => fn());
      assert.equal(logins.username, 'arrow');
      assert.ok(logins.password.length >= 20 && logins.rootPassword.length >= 20);
      const secrets = [logins.password, logins.rootPassword];

      assert.equal(await keys.read(serial), undefined, 'the key was destroyed before the reveal answered');
      assert.deepEqual(
        readdirSync(keysDir).filter((f) => f.startsWith(serial)),
        [],
      );
      const afterReveal = await histories(client, serial);
      assert.ok(afterReveal.includes('revealCredentials'), 'the reveal is in the history that was searched');
      for (const s of secrets) assert.ok(!afterReveal.includes(s), 'no password in any history after the reveal');
      await assert.rejects(handle.executeUpdate(revealCredentialsUpdate, { args: [{ by: 'alice@consultancy.example' }] }), (err: Error) =>
        /already revealed to alice/.test(String((err.cause as Error | undefined)?.message)),
      );

      await handle.executeUpdate(completeUpdate, { args: [{ by: 'admin' }] });
      await handle.result();
      const afterEnd = await histories(client, serial);
      assert.ok(afterEnd.includes(`vm-completion-${serial}`), 'the completion is among the histories searched');
      for (const s of secrets) assert.ok(!afterEnd.includes(s), 'no password in any history after completion');
    });
  });

  test('the consultant who revealed the logins may fetch them again within the window; then they are shredded', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const serial = 'VM-CS003';
    const alice = 'alice@consultancy.example';
    const world = await harness.h.world({}, { CREDENTIAL_KEYS_DIR: keysDir });
    const keys = new CredentialKeys(keysDir);
    const { client } = harness.h.env;
    await harness.h.withWorker(world, `shred-${serial}`, async () => {
      const request = await harness.h.request(serial, { consultants: [alice, 'bob@consultancy.example'] });
      const { handle, waitForStatus, record } = await requestDriver(client, `shred-${serial}`).startApproved(request);
      await waitForStatus('Fulfilled', { timeoutMs: 120_000 });
      const reveal = (by: string) => revealCredentials(client, keys, serial, handle.workflowId, by, (fn) => fn());

      const first = await reveal(alice);
      assert.equal(first.username, 'arrow');
      // The window is the policy default (REQUEST_REVEAL_REFETCH_MIN), counted from the reveal.
      assert.equal(Date.parse(first.refetchUntil!) - Date.parse(first.revealedAt), policyDefaults.revealRefetchMinutes * 60_000);
      assert.ok(await keys.read(serial), 'the key stays for the re-fetch window');
      assert.equal((await record()).credentials?.refetchUntil, first.refetchUntil, 'the record says until when');

      // The answer was lost: the same consultant asks again and gets the same logins, the same handover.
      const again = await reveal(alice.toUpperCase());
      assert.deepEqual([again.password, again.rootPassword, again.revealedTo, again.revealedAt], [first.password, first.rootPassword, alice, first.revealedAt]);
      await assert.rejects(reveal('bob@consultancy.example'), (err: Error) => new RegExp(`already revealed to ${alice} at ${first.revealedAt}`).test(String((err.cause as Error | undefined)?.message)));
      assert.ok((await record()).timeline.some((e) => e.event.startsWith(`guest credentials fetched again by ${alice.toUpperCase()}`)));

      // The window closes: the request shreds them on its own, and from then on no one can have them.
      await harness.h.env.sleep((policyDefaults.revealRefetchMinutes + 1) * 60_000);
      await waitFor('the key to be shredded', async () => ((await keys.read(serial)) === undefined ? true : undefined), 60_000);
      await assert.rejects(handle.executeUpdate(revealCredentialsUpdate, { args: [{ by: alice }] }), (err: Error) => {
        const message = String((err.cause as Error | undefined)?.message);
        return message.includes(`already revealed to ${alice} at ${first.revealedAt}`) && message.includes(`until ${first.refetchUntil} and have been shredded`);
      });
      const afterWindow = await histories(client, serial);
      for (const s of [first.password, first.rootPassword]) assert.ok(!afterWindow.includes(s), 'no password in any history');
      await handle.executeUpdate(completeUpdate, { args: [{ by: 'admin' }] });
      await handle.result();
    });
  });

  test('a request that ends unrevealed destroys its key: its sealed logins open for no one', async (t) => {
    if (harness.skipped) return t.skip(harness.skipped);
    const serial = 'VM-CS002';
    const world = await harness.h.world({}, { CREDENTIAL_KEYS_DIR: keysDir });
    const keys = new CredentialKeys(keysDir);
    const { client } = harness.h.env;
    await harness.h.withWorker(world, `shred-${serial}`, async () => {
      const { handle, waitForStatus } = await requestDriver(client, `shred-${serial}`).startApproved(await harness.h.request(serial));
      await waitForStatus('Fulfilled', { timeoutMs: 120_000 });
      const key = await keys.read(serial);
      assert.ok(key);
      await handle.executeUpdate(completeUpdate, { args: [{ by: 'admin' }] });
      await handle.result();
      assert.equal(await keys.read(serial), undefined, 'destroyed at the end of the request');
      assert.ok(!existsSync(join(keysDir, `${serial}.key.json`)));
      // What the build handed over is sealed: only the key that no longer exists opens it.
      const build = await client.workflow.getHandle(`vm-build-${serial}-1`).result();
      assert.ok(build.credentials?.ciphertext);
      assert.equal(CredentialKeys.open(serial, key, build.credentials).username, 'arrow', 'the destroyed key was the one');
      assert.ok(!historyPlaintext(await client.workflow.getHandle(`vm-build-${serial}-1`).fetchHistory()).includes('"rootPassword"'), 'no clear logins in the build');
    });
  });
});
