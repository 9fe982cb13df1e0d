import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError } from '../config';
import { apiKeyListSchema, type ApiKeyEntry } from './auth/apiKeys';

/**
 * The API's own settings, read from the environment its caller passes. (They belong in config.ts's schema; until
 * they are there, this is the one place that reads them.)
 */
const apiEnvSchema = z.object({
  /** A JSON file `{"keys": [{"id", "role", "org"?, "email"?, "sha256"}]}`. */
  API_KEYS_FILE: z.string().min(1).optional(),
  /** The same JSON inline; entries may carry `key` (clear) instead of `sha256`, hashed on load. */
  API_KEYS: z.string().min(1).optional(),
  /** Shared secret of the webhook intake's HMAC-SHA256 signature. Unset: the intake is off (503). */
  WEBHOOK_SECRET: z.string().min(16, 'use at least 16 characters').optional(),
  /** Bound on every call the API makes to Temporal. */
  API_TEMPORAL_TIMEOUT_MS: z.coerce.number().int().positive().default(10_000),
  /** How often a log stream asks the build for new lines. */
  API_LOG_POLL_MS: z.coerce.number().int().min(50).default(1_000),
  /** How often a quiet log stream sends a comment, so proxies keep it open. */
  API_SSE_HEARTBEAT_MS: z.coerce.number().int().min(100).default(15_000),
});

export interface ApiTimings {
  temporalTimeoutMs: number;
  logPollMs: number;
  sseHeartbeatMs: number;
}

export interface ApiSettings {
  /** Undefined when no key is configured at all (the embedded default then creates one). */
  keys?: ApiKeyEntry[];
  webhookSecret?: string;
  timings: ApiTimings;
}

export function loadApiSettings(env: NodeJS.ProcessEnv): ApiSettings {
  const parsed = apiEnvSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(`invalid configuration:\n${parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`).join('\n')}`);
  }
  const e = parsed.data;
  const fromFile = e.API_KEYS_FILE ? parseKeys('API_KEYS_FILE', readKeysFile(e.API_KEYS_FILE)) : undefined;
  const fromEnv = e.API_KEYS ? parseKeys('API_KEYS', e.API_KEYS) : undefined;
  const keys = fromFile || fromEnv ? [...(fromFile ?? []), ...(fromEnv ?? [])] : undefined;
  if (keys) parseKeys('API_KEYS_FILE + API_KEYS', JSON.stringify(keys)); // ids and keys unique across both
  return {
    keys,
    webhookSecret: e.WEBHOOK_SECRET,
    timings: { temporalTimeoutMs: e.API_TEMPORAL_TIMEOUT_MS, logPollMs: e.API_LOG_POLL_MS, sseHeartbeatMs: e.API_SSE_HEARTBEAT_MS },
  };
}

export const defaultApiTimings: ApiTimings = loadApiSettings({}).timings;

function readKeysFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`API_KEYS_FILE=${path} cannot be read: ${(err as Error).message}`);
  }
}

/** Parses a key list; the message names the entry and field, never a key. */
export function parseKeys(source: string, json: string): ApiKeyEntry[] {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new ConfigError(`${source} is not valid JSON`);
  }
  const parsed = apiKeyListSchema.safeParse(value);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${source}: ${i.path.join('.') || '(top)'}: ${i.message}`);
    throw new ConfigError(`invalid API keys:\n${lines.join('\n')}`);
  }
  return parsed.data;
}
