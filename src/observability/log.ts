import { pino, type DestinationStream, type Logger as PinoLogger } from 'pino';
import { createRedactor, REDACTED, redactText, secretKeyPaths, type RedactorOptions } from './redact';

/**
 * pveflow's structured logger is pino: one JSON object per line, `{"level","time","name",...fields,"msg"}`, with the
 * level as its name and the time in ISO 8601. Call it the pino way, fields first: `log.info({ vmid }, 'clone
 * started')`. What pino does not do itself — look inside values for secrets — runs in its hooks (see redact.ts).
 */
export type Logger = PinoLogger;
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

/** Dropped from fields and bindings, so that no field can make a line lie about its level, time or message. */
const RESERVED = ['time', 'level', 'msg'];

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
  const known = opts.knownSecrets ?? [];
  const clean = (fields: object): LogFields => {
    const body = redact(fields) as LogFields;
    for (const key of RESERVED) delete body[key];
    return body;
  };
  const now = opts.now ?? (() => new Date());
  const destination: DestinationStream | undefined = opts.write ? { write: opts.write } : undefined;
  const options = {
    level: opts.level ?? 'info',
    // No pid or hostname: the process is named, and the container or unit already says where it runs.
    base: opts.name ? { name: opts.name } : null,
    timestamp: () => `,"time":"${now().toISOString()}"`,
    redact: { paths: secretKeyPaths(), censor: REDACTED },
    formatters: {
      level: (label: string) => ({ level: label }),
      log: clean,
      bindings: clean,
    },
    serializers: {
      // After interpolation (`%s`, `%j`): the final message.
      msg: (msg: unknown) => (typeof msg === 'string' ? redactText(msg, known) : msg),
      // The redactor already turned every error into pino's standard shape; serializing it again would lose `type`.
      err: (err: unknown) => err,
    },
  };
  const logger = destination ? pino(options, destination) : pino(options);
  // pino applies `formatters.bindings` to the root's bindings only, so a child's pass through the redactor here;
  // children inherit this `child` from their parent (pino builds them with Object.create).
  const pinoChild = logger.child;
  logger.child = function child(this: Logger, bindings, childOptions) {
    return pinoChild.call(this, clean(bindings), childOptions);
  } as Logger['child'];
  return logger;
}

/** For tests and for code that must take a logger but has nothing to say. */
export const silentLogger: Logger = pino({ level: 'silent' }, { write: () => undefined });
