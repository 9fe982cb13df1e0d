// No zod here, no Node built-ins: activities and tests import this; nothing in it touches the world.

/** The guest's own account of its first boot: what cloud-init's modules (and the snippet's commands) printed. */
export const CLOUD_INIT_LOG = '/var/log/cloud-init-output.log';

/** How much of a guest log a failure carries: enough to see the last error, little enough for Temporal's history. */
export const LOG_TAIL_LINES = 40;
export const LOG_TAIL_MAX_CHARS = 4096;

/**
 * A guest log's last lines, secrets removed: the log can hold the snippet's `netbird up --setup-key …` command line
 * and password hashes, and a failure's message lands in Temporal's history and the console.
 */
export function guestLogTail(content: string, lines = LOG_TAIL_LINES, maxChars = LOG_TAIL_MAX_CHARS): string {
  // Redacted before cutting: a cut through a secret would leave a piece no pattern recognises.
  const kept = redactGuestLog(content).replace(/\s+$/, '').split('\n').slice(-lines).join('\n');
  return kept.length > maxChars ? `…${kept.slice(kept.length - maxChars + 1)}` : kept;
}

const REDACTED = '[redacted]';

/** Setup keys (UUID-shaped, or whatever follows `--setup-key`/`-k`), crypt(3) password hashes, and `key=`/`token:` values. */
export function redactGuestLog(text: string): string {
  return text
    .replace(/(--setup-key(?:=|\s+)|\s-k\s+)(["']?)[^\s"']+\2/g, `$1${REDACTED}`)
    .replace(/\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi, REDACTED)
    .replace(/\$(?:1|2[abxy]?|5|6|y|gy|7)\$[^\s:"']+/g, REDACTED)
    .replace(/\b((?:setup[_-]?key|password|passwd|token|secret)["']?\s*[:=]\s*)(["']?)[^\s"',}]+\2/gi, `$1${REDACTED}`);
}
