import { readFileSync } from 'node:fs';
import { ConfigError, loadConfig, type Config } from '../../config';
import { apiKeyListSchema, type ApiKeyEntry } from '../auth/apiKeys';

export interface ApiTimings {
  temporalTimeoutMs: number;
  /** A day-2 operation's own wait for its outcome, after the request accepted it (API_OPERATION_WAIT_MS). */
  operationWaitMs: number;
  logPollMs: number;
  sseHeartbeatMs: number;
  /**
   * Bound on submissions being started at once. Past it Temporal is answering slower than requests arrive: a clear
   * "nothing was created, retry" beats queueing into the deadline, where the outcome of a start becomes unknown.
   */
  maxStartsInFlight: number;
  /** Open log streams per key and overall (rateLimits.ts). */
  maxStreamsPerKey: number;
  maxStreams: number;
  /** Writes per key and minute; 0: unbounded. */
  writesPerMinute: number;
}

export interface ApiSettings {
  /** Undefined when no key is configured at all (the embedded default then creates one). */
  keys?: ApiKeyEntry[];
  webhookSecret?: string;
  timings: ApiTimings;
}

/** The API's settings from the configuration; reads and checks the key file, so a bad one stops the start-up. */
export function loadApiSettings(e: Config): ApiSettings {
  const fromFile = e.API_KEYS_FILE ? parseKeys('API_KEYS_FILE', readKeysFile(e.API_KEYS_FILE)) : undefined;
  const fromEnv = e.API_KEYS ? parseKeys('API_KEYS', e.API_KEYS) : undefined;
  const keys = fromFile || fromEnv ? [...(fromFile ?? []), ...(fromEnv ?? [])] : undefined;
  if (keys) parseKeys('API_KEYS_FILE + API_KEYS', JSON.stringify(keys)); // ids and keys unique across both
  return {
    keys,
    webhookSecret: e.WEBHOOK_SECRET,
    timings: {
      temporalTimeoutMs: e.API_TEMPORAL_TIMEOUT_MS,
      operationWaitMs: e.API_OPERATION_WAIT_MS,
      logPollMs: e.API_LOG_POLL_MS,
      sseHeartbeatMs: e.API_SSE_HEARTBEAT_MS,
      maxStartsInFlight: e.API_MAX_STARTS_IN_FLIGHT,
      maxStreamsPerKey: e.API_SSE_MAX_PER_KEY,
      maxStreams: e.API_SSE_MAX,
      writesPerMinute: e.API_WRITES_PER_MINUTE,
    },
  };
}

export const defaultApiTimings: ApiTimings = loadApiSettings(loadConfig({})).timings;

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
