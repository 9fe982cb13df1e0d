import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { parseKeys } from '../http/apiConfig';
import { generateApiKey, hashApiKey, type ApiKeyEntry } from './apiKeys';

export interface EmbeddedKeys {
  entries: ApiKeyEntry[];
  /** Set only when the file was created just now: the one moment the clear key exists. */
  createdKey?: string;
}

/**
 * The embedded default with no keys configured: the API is never left open. The first start writes `file` with one
 * operator key (stored hashed, mode 0600) and hands the clear key back once to be shown; later starts read the file.
 */
export function ensureEmbeddedApiKeys(file: string): EmbeddedKeys {
  if (existsSync(file)) return { entries: parseKeys(file, readFileSync(file, 'utf8')) };
  const key = generateApiKey();
  const entries: ApiKeyEntry[] = [{ id: 'operator', role: 'operator', sha256: hashApiKey(key) }];
  // 'wx': two starts racing on one data directory must not overwrite each other's key.
  writeFileSync(file, JSON.stringify({ keys: entries }, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
  return { entries, createdKey: key };
}
