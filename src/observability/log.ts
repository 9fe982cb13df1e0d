import { createRedactor, type RedactorOptions } from './redact';

/**
 * pveflow's structured logger: one JSON object per line on stdout, `{"time","level","msg",...fields}`, every
 * line passed through the redactor first. Callers depend on this interface only — message first, fields second —
 * so a pino-backed implementation (see docs/operations.md) replaces `createLogger` without touching them.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger whose lines all carry `bindings` (e.g. `{ serial, workflowId }`). */
  child(bindings: LogFields): Logger;
  isLevelEnabled(level: LogLevel): boolean;
}

const RANK: Record<LogLevel, number> = { debug: 20, info: 30, warn: 40, error: 50 };
/** Dropped from the fields, so that no field can make a line lie about its level, time or message. */
const RESERVED = new Set(['time', 'level', 'msg']);

export interface LoggerOptions extends RedactorOptions {
  level?: LogLevel;
  /** `name` on every line: which process wrote it (`worker`, `api`). */
  name?: string;
  /** Where lines go; stdout by default. Tests collect them. */
  write?: (line: string) => void;
  now?: () => Date;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const redact = createRedactor(opts);
  const threshold = RANK[opts.level ?? 'info'];
  const write = opts.write ?? ((line: string) => void process.stdout.write(line));
  const now = opts.now ?? (() => new Date());

  const make = (bindings: LogFields): Logger => {
    const emit = (level: LogLevel, msg: string, fields?: LogFields) => {
      if (RANK[level] < threshold) return;
      const body = redact({ ...bindings, ...fields }) as LogFields;
      for (const key of RESERVED) delete body[key];
      const line = { time: now().toISOString(), level, msg: redact(msg), ...body };
      let text: string;
      try {
        text = JSON.stringify(line);
      } catch {
        text = JSON.stringify({ time: line.time, level, msg: line.msg, logError: 'fields could not be serialized' });
      }
      write(`${text}\n`);
    };
    return {
      debug: (msg, fields) => emit('debug', msg, fields),
      info: (msg, fields) => emit('info', msg, fields),
      warn: (msg, fields) => emit('warn', msg, fields),
      error: (msg, fields) => emit('error', msg, fields),
      child: (more) => make({ ...bindings, ...more }),
      isLevelEnabled: (level) => RANK[level] >= threshold,
    };
  };
  return make(opts.name ? { name: opts.name } : {});
}

/** For tests and for code that must take a logger but has nothing to say. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => silentLogger,
  isLevelEnabled: () => false,
};
