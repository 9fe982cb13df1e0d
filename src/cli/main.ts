import { parseArgs } from 'node:util';
import { CliError, usageError } from './cliError';
import type { Command } from './command';
import { classCommands } from './commands/classes';
import { credentialsCommand } from './commands/credentials';
import { doctorCommand } from './commands/doctor';
import { logsCommand } from './commands/logs';
import { requestCommands } from './commands/requests';
import { templatesCommand } from './commands/templates';
import { vmCommands } from './commands/vm';
import { imagesCommand } from './commands/images';
import { loginCommand, logoutCommand } from './commands/login';
import { createContext, type CliIo } from './context';
import { exitCodes } from './exitCodes';
import { globalFlags, optionSpec, type FlagValues } from './options';
import { commandUsage, mainUsage } from './usage';

/**
 * `pveflow`: the HTTP API from a shell. Tables for people, `--json` for scripts, and exit codes a script can branch
 * on (see usage.ts). It only ever talks to the API (doctor aside, which checks the cluster itself).
 */
export const commands: readonly Command[] = [...requestCommands, ...classCommands, logsCommand, credentialsCommand, templatesCommand, imagesCommand, doctorCommand, ...vmCommands, loginCommand, logoutCommand];

/** Exit code for a failure that is pveflow's own bug, not the user's or the API's (EX_SOFTWARE). */
const internalError = 70;

export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const say = (stream: NodeJS.WriteStream, text: string) => stream.write(text.endsWith('\n') ? text : `${text}\n`);
  let json = false;
  let close = async () => {};
  try {
    let parsed;
    try {
      parsed = parseArgs({ args: [...argv], options: optionSpec, allowPositionals: true, strict: true });
    } catch (err) {
      throw usageError(`${(err as Error).message.replace(/\. To specify a positional argument.*$/s, '')} (see pveflow --help)`);
    }
    const flags = parsed.values as FlagValues;
    json = flags.json === true;
    const positionals = parsed.positionals;

    const command = commands.find((c) => c.words.every((w, i) => positionals[i] === w));
    if (!command) {
      if (positionals.length === 0 || (positionals.length === 1 && positionals[0] === 'help')) {
        if (flags.help || positionals[0] === 'help') return (say(io.stdout, mainUsage(commands)), exitCodes.ok);
        say(io.stderr, mainUsage(commands));
        return exitCodes.usage;
      }
      const group = commands.filter((c) => c.words[0] === positionals[0]);
      if (group.length > 1 && positionals.length === 1) {
        if (flags.help) return (say(io.stdout, mainUsage(group)), exitCodes.ok);
        throw usageError(`${positionals[0]} needs one of: ${group.map((c) => c.words[1]).join(', ')} (see pveflow ${positionals[0]} --help)`);
      }
      throw usageError(`unknown command: ${positionals.slice(0, group.length ? 2 : 1).join(' ')} (see pveflow --help)`);
    }
    if (flags.help) return (say(io.stdout, commandUsage(command)), exitCodes.ok);

    const allowed = new Set([...globalFlags, ...command.flags]);
    const stray = (Object.keys(flags) as (keyof FlagValues)[]).filter((f) => !allowed.has(f));
    if (stray.length) throw usageError(`pveflow ${command.words.join(' ')} does not take ${stray.map((f) => `--${f}`).join(', ')} (see --help)`);

    const ctx = createContext(flags, positionals.slice(command.words.length), io);
    close = ctx.closeApi;
    return await command.run(ctx);
  } catch (err) {
    if (!(err instanceof CliError)) {
      say(io.stderr, `pveflow: unexpected error (a bug in pveflow; please report it): ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      return internalError;
    }
    // Under --json a script gets the API's own answer (e.g. the 400's issues[]) on stdout, and the words on stderr.
    if (json && err.apiBody) say(io.stdout, err.apiBody);
    say(io.stderr, [`pveflow: ${err.message}`, ...err.details.map((d) => `  ${d}`)].join('\n'));
    return err.exitCode;
  } finally {
    await close().catch(() => {});
  }
}

/** The process entry (`tsx src/cli/main.ts`, `bin/pveflow`): exit code set, output left to drain. */
export function main(): void {
  // `pveflow requests list | head` closes the pipe early: that is the reader being done, not an error of ours.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(typeof process.exitCode === 'number' ? process.exitCode : exitCodes.ok);
  });
  void runCli(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env }).then((code) => {
    process.exitCode = code;
  });
}

if (require.main === module) main();
