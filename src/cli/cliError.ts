import { exitCodes, type ExitCode } from './exitCodes';

/** A failure the CLI reports in one message and turns into its exit code; `details` are printed one per line. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode,
    readonly details: readonly string[] = [],
    /** The API's own answer, printed as is under --json. */
    readonly apiBody?: string,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** Bad flags or arguments, found before anything was sent. */
export const usageError = (message: string) => new CliError(message, exitCodes.usage);
