import { serialSchema } from '../domain/deviceRequest';
import { ApiClient } from './apiClient';
import { configDir, storedBearer } from './signIn/tokens';
import { usageError } from './cliError';
import type { FlagValues } from './options';
import { stylable } from './output/table';

export const defaultApiUrl = 'http://127.0.0.1:3000';
const defaultTimeoutS = 30;

/** What a command gets: its flags and arguments, where to write, and the API (built on first use). */
export interface CliContext {
  flags: FlagValues;
  /** The arguments after the command's words (a serial, say). */
  args: string[];
  json: boolean;
  styled: boolean;
  out(text: string): void;
  err(text: string): void;
  api(): ApiClient;
  /** The API's base URL as the flags and environment name it (no trailing slash). */
  apiUrl(): string;
  /** Bound on each call (--timeout). */
  timeoutMs: number;
  env: NodeJS.ProcessEnv;
}

export interface CliIo {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  env: NodeJS.ProcessEnv;
}

/**
 * Flags win over the environment for the URL and the key. The environment is the better place for the key: a flag
 * is visible to every user of the machine in `ps`.
 */
export function createContext(flags: FlagValues, args: string[], io: CliIo): CliContext & { closeApi(): Promise<void> } {
  let api: ApiClient | undefined;
  const url = flags['api-url'] ?? io.env.PVEFLOW_API_URL ?? defaultApiUrl;
  const timeoutS = flags.timeout === undefined ? defaultTimeoutS : Number(flags.timeout);
  if (!Number.isFinite(timeoutS) || timeoutS <= 0) throw usageError(`--timeout must be a number of seconds above 0, not "${flags.timeout}"`);
  return {
    flags,
    args,
    json: flags.json === true,
    styled: stylable(io.stdout),
    out: (text) => io.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
    err: (text) => io.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
    api: () =>
      (api ??= new ApiClient({
        url,
        // A key given wins; else the tokens of `pveflow login` for this API, renewed when about to expire.
        key: flags['api-key'] ?? io.env.PVEFLOW_API_KEY ?? (() => storedBearer(configDir(io.env), normalised(url), timeoutS)),
        timeoutMs: timeoutS * 1000,
      })),
    apiUrl: () => normalised(url),
    timeoutMs: timeoutS * 1000,
    env: io.env,
    closeApi: async () => {
      await api?.close();
    },
  };
}

/** One spelling per API, so that a sign-in is found again whether the URL was typed with a trailing slash or not. */
const normalised = (url: string) => url.replace(/\/+$/, '');

/** The one serial a command acts on, checked for shape before anything is sent. */
export function serialArg(ctx: CliContext): string {
  const [serial, ...rest] = ctx.args;
  if (!serial) throw usageError('name the request: its serial, e.g. VM-7K2Q9');
  if (rest.length) throw usageError(`one serial only; unexpected: ${rest.join(' ')}`);
  const upper = serial.toUpperCase();
  if (!serialSchema.safeParse(upper).success) throw usageError(`"${serial}" is not a request serial (VM- and five letters or digits, e.g. VM-7K2Q9)`);
  return upper;
}
