import { patched } from '@temporalio/workflow';
import type { RequestRecord, TimelineEntry } from '../../contracts/types';
import { PATCHES } from '../patches';

/**
 * How much a request's record may hold, each bound enforced where its list grows (docs/operations.md, "A request's
 * record is bounded"). Any key of the org can add to a request for weeks: unbounded, its record once outgrew
 * Temporal's 2 MiB payload limit, every workflow task failed and the lease's cleanup never ran (issue 27). With these
 * bounds the whole record stays well under 1 MiB whatever its callers send.
 *
 * - timeline: its first entry (the submission) and the latest, at most TIMELINE_ENTRIES_KEPT entries and
 *   TIMELINE_TEXT_KEPT characters; what falls between is summarised in one entry; each entry's text at most
 *   TIMELINE_TEXT_MAX characters;
 * - operations: the running one and the latest finished, OPERATIONS_KEPT in all (operations.ts);
 * - builds: the latest and PREVIOUS_BUILDS_KEPT before it (buildAttempt.ts), each log at most 200 lines (vmBuild.ts);
 * - snapshots: the policy's snapshot limit; leftovers and leftover VMs: one per build that could not undo itself;
 * - notes: 2,000 characters, `by` 200 (the update validators, src/contracts/updateArguments.ts).
 */
export const TIMELINE_ENTRIES_KEPT = 500;
/** About the latest 120 entries when every one carries a 2,000-character note; thousands of ordinary ones. */
export const TIMELINE_TEXT_KEPT = 256 * 1024;
/** A 2,000-character note with what it was about (a lease end moved, an operation asked) fits whole. */
export const TIMELINE_TEXT_MAX = 2_400;
/** Finished day-2 operations the record keeps (the timeline keeps their story within its own bound). */
export const OPERATIONS_KEPT = 20;
/** Earlier build attempts kept beside the latest (each with its own bounded log): what a rebuild leaves to read. */
export const PREVIOUS_BUILDS_KEPT = 4;
/**
 * What continue-as-new may carry over, as JSON: half Temporal's 2 MiB payload limit. The bounds above keep a record
 * far below it; this is the check that a record which still grew (a long cloud-init user-data, long error texts) is
 * trimmed before it reaches Temporal rather than failing every workflow task after it.
 */
export const CARRIED_BYTES_MAX = 1024 * 1024;

const textOf = (e: TimelineEntry) => e.event.length + (e.by?.length ?? 0);

/** An entry's text within TIMELINE_TEXT_MAX: a longer one (an activity's error, a note with its context) is cut. */
export function clipped(event: string): string {
  if (event.length <= TIMELINE_TEXT_MAX || !patched(PATCHES.boundedTimeline)) return event;
  return `${event.slice(0, TIMELINE_TEXT_MAX - 1)}…`;
}

/**
 * Keeps the timeline within `textKept` characters and TIMELINE_ENTRIES_KEPT entries: the oldest entries after the
 * first are dropped, a tenth more than needed so that this runs seldom, and one entry at index 1 says how many
 * entries it stands for, from when to when and by whom.
 */
export function boundTimeline(timeline: TimelineEntry[], textKept = TIMELINE_TEXT_KEPT): void {
  let text = timeline.reduce((n, e) => n + textOf(e), 0);
  if (timeline.length <= TIMELINE_ENTRIES_KEPT && text <= textKept) return;
  if (!patched(PATCHES.boundedTimeline)) return;
  const earlier = timeline[1]?.summarises ? timeline[1] : undefined;
  const first = earlier ? 2 : 1;
  const entriesTarget = Math.floor(TIMELINE_ENTRIES_KEPT * 0.9);
  const textTarget = Math.floor(textKept * 0.9);
  let drop = 0;
  // The latest entry always stays: it is what just happened.
  while (first + drop < timeline.length - 1 && (timeline.length - drop > entriesTarget || text > textTarget)) text -= textOf(timeline[first + drop++]!);
  if (drop === 0) return;
  const dropped = timeline.splice(first, drop);
  if (earlier) timeline.splice(1, 1);
  const summarises = (earlier?.summarises ?? 0) + dropped.length;
  const from = earlier?.at ?? dropped[0]!.at;
  const by = [...new Set(dropped.map((e) => e.by).filter((b): b is string => b !== undefined))];
  const who = by.length ? `; the latest of them by ${by.slice(0, 5).join(', ')}${by.length > 5 ? ` and ${by.length - 5} more` : ''}` : '';
  timeline.splice(1, 0, {
    at: from,
    event: `${summarises} earlier entries summarised, from ${from} to ${dropped.at(-1)!.at}, to keep the request's record bounded${who}`,
    summarises,
  });
}

/**
 * The record as continue-as-new may carry it: within CARRIED_BYTES_MAX as JSON, by a tighter timeline, then without
 * the earlier builds' logs. A record within the bound is left as it is.
 */
export function fitForCarrying(record: RequestRecord): void {
  const size = () => JSON.stringify(record).length;
  if (size() <= CARRIED_BYTES_MAX || !patched(PATCHES.boundedTimeline)) return;
  for (let textKept = TIMELINE_TEXT_KEPT / 2; textKept >= 4096 && size() > CARRIED_BYTES_MAX; textKept /= 2) boundTimeline(record.timeline, textKept);
  if (size() > CARRIED_BYTES_MAX && record.previousBuilds) record.previousBuilds = record.previousBuilds.map((b) => ({ ...b, log: b.log.slice(-10) }));
}
