import type { LogLevel as SdkLogLevel, LogMetadata, Logger as SdkLogger } from '@temporalio/common';
import type { Logger } from './log';

/**
 * The Temporal SDK's log lines (worker lifecycle, workflow and activity `log` calls, Core's own) through pveflow's
 * pino logger and its redaction, so that a process writes one format and no SDK line can carry a secret in clear.
 * For `Runtime.install({ logger })`, once per process, before the first connection.
 */
export function sdkLoggerFrom(logger: Logger): SdkLogger {
  const write = (given: SdkLogLevel, message: string, meta?: LogMetadata) => {
    const fields = { sdk: true, ...meta };
    // The bundler's report (webpack's module listing, the bundle's size) matters to someone debugging the bundle only.
    const level = given === 'INFO' && isBundlerReport(message) ? 'DEBUG' : given;
    if (level === 'ERROR') logger.error(fields, message);
    else if (level === 'WARN') logger.warn(fields, message);
    else if (level === 'INFO') logger.info(fields, message);
    else logger.debug(fields, message);
  };
  return {
    log: write,
    trace: (message, meta) => write('TRACE', message, meta),
    debug: (message, meta) => write('DEBUG', message, meta),
    info: (message, meta) => write('INFO', message, meta),
    warn: (message, meta) => write('WARN', message, meta),
    error: (message, meta) => write('ERROR', message, meta),
  };
}

/** The worker's bundler logs webpack's stats text, then "Workflow bundle created", both at INFO. */
export function isBundlerReport(message: string): boolean {
  return message.startsWith('Workflow bundle created') || /^webpack \d+\.\d+\.\d+ compiled/m.test(message) || /^asset workflow-bundle-/m.test(message);
}
