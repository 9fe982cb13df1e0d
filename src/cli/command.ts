import type { CliContext } from './context';
import type { ExitCode } from './exitCodes';
import type { Flag } from './options';

/** One thing the CLI does: the words that name it, the flags it takes beyond the global ones, and its help. */
export interface Command {
  words: readonly string[];
  /** `<serial>`, `[--org ORG]`...: what follows the words in the help. */
  synopsis: string;
  summary: string;
  flags: readonly Flag[];
  run(ctx: CliContext): Promise<ExitCode>;
}
