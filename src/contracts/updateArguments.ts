import type { Actor, Extension, Rejection } from './messages';

/*
 * The update validators' checks of their arguments. The API parses every body with zod before it sends an update;
 * these catch what reaches a workflow another way (Temporal UI, the CLI, a script). Written by hand because zod would
 * join the workflow bundle, whose modules the SDK evaluates once for every workflow it starts or replays: zod and its
 * schemas cost ≈ 12 ms of the workflow thread each time, measured (docs/performance.md).
 */

const ISO_DATE_TIME_WITH_OFFSET = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

export function parseActor(update: string, arg: unknown): Actor {
  const o = objectOf(update, arg);
  text(update, o, 'by', 1, 200);
  optionalText(update, o, 'note', 2000);
  return o as unknown as Actor;
}

export function parseRejection(update: string, arg: unknown): Rejection {
  const o = objectOf(update, arg);
  text(update, o, 'by', 1, 200);
  text(update, o, 'reason', 1, 2000);
  return o as unknown as Rejection;
}

export function parseExtension(update: string, arg: unknown): Extension {
  const o = objectOf(update, arg);
  text(update, o, 'by', 1, 200);
  optionalText(update, o, 'note', 2000);
  const newEnd = o.newEnd;
  if (typeof newEnd !== 'string' || !ISO_DATE_TIME_WITH_OFFSET.test(newEnd) || Number.isNaN(Date.parse(newEnd))) {
    throw refusal(update, 'newEnd', 'must be an ISO 8601 date-time with an offset, like 2026-12-22T18:00:00Z');
  }
  return o as unknown as Extension;
}

function objectOf(update: string, arg: unknown): Record<string, unknown> {
  if (typeof arg !== 'object' || arg === null || Array.isArray(arg)) throw new TypeError(`${update}: the argument must be an object`);
  return arg as Record<string, unknown>;
}

function text(update: string, o: Record<string, unknown>, field: string, min: number, max: number): void {
  const v = o[field];
  if (typeof v !== 'string' || v.length < min || v.length > max) {
    throw refusal(update, field, `must be a string of ${min} to ${max} characters`);
  }
}

function optionalText(update: string, o: Record<string, unknown>, field: string, max: number): void {
  if (o[field] === undefined) return;
  const v = o[field];
  if (typeof v !== 'string' || v.length > max) throw refusal(update, field, `must be a string of at most ${max} characters`);
}

const refusal = (update: string, field: string, reason: string) => new TypeError(`${update}: ${field} ${reason}`);
