import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';

/** The roles a key may carry (src/api/auth/apiKeys.ts's Role, restated as a value for the workflow bundle). */
export type IssuedKeyRole = 'requester' | 'admin' | 'operator';

/**
 * A key issued at run time, as the key registry holds it: who it is, never the key. `sha256` is the same scheme as
 * the key file's (hex SHA-256 of the key): 256 random bits hashed cannot be turned back into the key, so neither
 * Temporal's history nor anyone holding the codec keys can recover one.
 */
export interface IssuedKey {
  id: string;
  name: string;
  role: IssuedKeyRole;
  /** Absent for an operator key (operators work across orgs). */
  org?: string;
  /** Required for a requester key (a requester files as itself), optional otherwise. */
  email?: string;
  /** Who created it (the creator's actor name). */
  owner: string;
  createdAt: string;
  expiresAt?: string;
  sha256: string;
}

export type IssueKeyArgs = Omit<IssuedKey, 'createdAt'>;

/** What an API process's cache asks: the keys when they changed since `version`, else only the version. */
export interface IssuedKeysAnswer {
  version: number;
  keys?: IssuedKey[];
}

/** Last use per key id (keys of the file included), recorded coarsely (at most once a minute per key and API process). */
export type KeyUse = Record<string, string>;

/** Adds a key. Refused (validator) when the id or the hash is taken or the registry is full. A retry with the same id and hash answers the key again. */
export const issueKeyUpdate = defineUpdate<IssuedKey, [IssueKeyArgs]>('issueKey');
/** Removes a key at once. `org`: the revoker's own org (an admin), refused for a key of another org or an unknown id. */
export const revokeKeyUpdate = defineUpdate<IssuedKey, [{ id: string; org?: string; by: string }]>('revokeKey');
/** Keys seen in use by one API process since its last report: id → when. */
export const keysUsedSignal = defineSignal<[{ used: KeyUse }]>('keysUsed');
export const issuedKeysQuery = defineQuery<IssuedKeysAnswer, [{ since?: number }]>('issuedKeys');
export const keyUseQuery = defineQuery<KeyUse>('keyUse');
