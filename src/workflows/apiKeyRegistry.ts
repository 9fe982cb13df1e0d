import { allHandlersFinished, condition, continueAsNew, setHandler, workflowInfo } from '@temporalio/workflow';
import { issueKeyUpdate, issuedKeysQuery, keysUsedSignal, keyUseQuery, revokeKeyUpdate, type IssuedKey, type KeyUse } from '../contracts/apiKeyRegistryMessages';
import { issueRefusal, keysToCarry, mergeKeyUse, revokeRefusal } from '../domain/apiKeyRegistry';

export interface ApiKeyRegistryInput {
  /** Carried over by continue-as-new. */
  keys?: IssuedKey[];
  used?: KeyUse;
  version?: number;
}

/** Keeps a run's history short: a new run after this many changes and use reports (or when Temporal suggests it). */
const CHANGES_PER_RUN = 500;

/**
 * The API keys issued at run time: one long-lived workflow per deployment, the one source every API process reads
 * (a query, every few seconds, answered in full only when `version` moved) so that a key issued or revoked through
 * one process holds in all of them within seconds, without a restart and without a shared database. It holds each
 * key's hash, never the key. Started by the first API call that needs it (update- or signal-with-start).
 */
export async function apiKeyRegistry(input: ApiKeyRegistryInput = {}): Promise<void> {
  let keys: IssuedKey[] = input.keys ?? [];
  let used: KeyUse = input.used ?? {};
  // Bumped by every change of the keys (not of their use): a cache that knows this version has them all.
  let version = input.version ?? 1;
  let changes = 0;

  setHandler(
    issueKeyUpdate,
    (ask) => {
      const held = keys.find((k) => k.id === ask.id);
      if (held) return held;
      const key: IssuedKey = { ...ask, createdAt: new Date().toISOString() };
      keys = [...keys, key];
      version++;
      changes++;
      return key;
    },
    {
      validator: (ask) => {
        const refusal = issueRefusal(keys, ask);
        if (refusal) throw new Error(refusal);
      },
    },
  );
  setHandler(
    revokeKeyUpdate,
    ({ id }) => {
      const key = keys.find((k) => k.id === id)!;
      keys = keys.filter((k) => k.id !== id);
      delete used[id];
      version++;
      changes++;
      return key;
    },
    {
      validator: ({ id, org }) => {
        const refusal = revokeRefusal(keys, id, org);
        if (refusal) throw new Error(refusal);
      },
    },
  );
  setHandler(keysUsedSignal, ({ used: reported }) => {
    used = mergeKeyUse(used, reported);
    changes++;
  });
  setHandler(issuedKeysQuery, ({ since }) => (since === version ? { version } : { version, keys }));
  setHandler(keyUseQuery, () => used);

  await condition(() => changes >= CHANGES_PER_RUN || workflowInfo().continueAsNewSuggested);
  await condition(allHandlersFinished);
  await continueAsNew<typeof apiKeyRegistry>({ keys: keysToCarry(keys, Date.now()), used, version: version + 1 });
}
