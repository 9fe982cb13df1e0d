import { z } from 'zod';
import { usageError } from './cliError';

const units: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/**
 * A date flag as the API wants it (ISO 8601 with an offset). Besides an ISO date-time it takes `now`, and `+<n><m|h|d|w>`
 * counted from `base` (for --end: from the start), so that a request for the next two weeks is `--start now --end +14d`.
 */
export function dateFlag(flag: string, value: string, base: Date = new Date()): string {
  if (value === 'now') return new Date().toISOString();
  const relative = /^\+(\d{1,4})([mhdw])$/.exec(value);
  if (relative) return new Date(base.getTime() + Number(relative[1]) * units[relative[2]!]!).toISOString();
  // The API's own rule for a date-time: ISO 8601 with an offset, and a real date (no 31 February).
  if (isoDateTime.safeParse(value).success && !Number.isNaN(Date.parse(value))) return value;
  const hint = value.startsWith('+') ? ': a duration is +<n> and one of m (minutes), h, d, w (e.g. +14d)' : '';
  throw usageError(`--${flag} ${JSON.stringify(value)} is not a date${hint}; give an ISO date-time with an offset (2026-12-01T09:00:00Z), now, or +<n>m|h|d|w`);
}

const isoDateTime = z.iso.datetime({ offset: true });

/** `2026-12-01 09:00` (UTC): short enough for a table column, unambiguous for anyone reading it. */
export function shortTime(iso: string | undefined): string | undefined {
  if (!iso) return undefined;
  const t = new Date(iso);
  return Number.isNaN(t.getTime()) ? iso : t.toISOString().slice(0, 16).replace('T', ' ');
}

/** `09:00:42` (UTC), for log lines. */
export function clockTime(iso: string | undefined): string {
  if (!iso) return '--:--:--';
  const t = new Date(iso);
  return Number.isNaN(t.getTime()) ? iso : t.toISOString().slice(11, 19);
}
