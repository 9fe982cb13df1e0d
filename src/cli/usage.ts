import type { Command } from './command';

const exitCodeHelp = `Exit codes:
  0  done
  1  the API refused: invalid input (400, each field and reason printed), the request's state does not allow it (409);
     logs -f: the build failed or was cancelled; doctor: a check failed
  2  usage: unknown command or flag, bad value; nothing was sent
  3  authentication: no API key, an unknown key (401), or a key not allowed to do this (403)
  4  not found: no such request, or one of another org (404)
  5  the API is unreachable, answered 5xx, or did not answer in time
  70 a bug in pveflow itself`;

const globalHelp = `Options (every command):
  --api-url URL    the pveflow API (env PVEFLOW_API_URL; default http://127.0.0.1:3000)
  --api-key KEY    the API key (env PVEFLOW_API_KEY, preferred: a flag is visible to every user in \`ps\`)
  --json           print the API's JSON as it answered (logs: one JSON event per line); errors keep exit codes
  --timeout S      seconds to wait for each answer (default 30)
  -h, --help       this help, or a command's`;

const dateHelp = 'DATE: an ISO 8601 date-time (2026-12-01T09:00:00Z), now, or +<n>m|h|d|w (from now; --end: from --start)';

export function mainUsage(commands: readonly Command[]): string {
  const lines = commands.map((c) => `  pveflow ${c.words.join(' ')}${c.synopsis ? ` ${shorten(c.synopsis)}` : ''}\n      ${c.summary}`);
  return `pveflow: VM requests on Proxmox VE, through the pveflow API\n\nUsage:\n${lines.join('\n')}\n\n${globalHelp}\n\n${dateHelp}\n\n${exitCodeHelp}\n`;
}

export function commandUsage(c: Command): string {
  return `Usage: pveflow ${c.words.join(' ')}${c.synopsis ? ` ${c.synopsis}` : ''}\n\n  ${c.summary}\n\n${globalHelp}\n\n${dateHelp}\n\n${exitCodeHelp}\n`;
}

/** The overview names the required parts only; a command's own help has all its flags. */
function shorten(synopsis: string): string {
  const required = synopsis.replace(/\[[^\]]*\]\s*/g, '').trim();
  return required.length < synopsis.length ? `${required} [options]`.trim() : synopsis;
}
