import { setTimeout as sleep } from 'node:timers/promises';
import type { BuildTask, RequestRecord } from '../../contracts/types';
import { CliError } from '../cliError';
import type { Command } from '../command';
import { serialArg, type CliContext } from '../context';
import { clockTime } from '../dates';
import { exitCodes, type ExitCode } from '../exitCodes';
import { readServerSentEvents, type ServerSentEvent } from '../sseReader';

interface LogLine {
  attempt?: number;
  at: string;
  stage: string;
  message: string;
}
interface TimelineLine {
  at: string;
  event: string;
  by?: string;
}
interface StatusLine {
  status: string;
  build?: { attempt: number; state: string; stage: string; progress: number };
}
interface EndLine {
  status: string;
  build_state?: string;
}

type BuildAttempt = Pick<BuildTask, 'attempt' | 'state' | 'startedAt' | 'endedAt' | 'durationSeconds' | 'vmid' | 'node' | 'error'>;
/** On the same instant: an attempt's heading before its lines, its lines before the timeline entry they led to. */
const order: Record<string, number> = { build: 0, log: 1, timeline: 2 };

const attemptOf = (b: Omit<BuildTask, 'log'>): BuildAttempt => ({
  attempt: b.attempt,
  state: b.state,
  startedAt: b.startedAt,
  endedAt: b.endedAt,
  durationSeconds: b.durationSeconds,
  vmid: b.vmid,
  node: b.node,
  error: b.error,
});

/** Reconnections in a row (with Last-Event-ID) before a dropped stream counts as the API being gone. */
const MAX_RECONNECTS = 5;

export const logsCommand: Command = {
  words: ['logs'],
  synopsis: '[-f] <serial>',
  summary: 'the build log and timeline; -f follows the live build to its end (exit 0: built, 1: failed or cancelled)',
  flags: ['follow'],
  async run(ctx) {
    const serial = serialArg(ctx);
    return ctx.flags.follow ? follow(ctx, serial) : printRecorded(ctx, serial);
  },
};

/** Without -f: what the request holds right now, in time order, and done. */
async function printRecorded(ctx: CliContext, serial: string): Promise<ExitCode> {
  const { body: record } = await ctx.api().get<RequestRecord>(`/api/device_requests/${serial}`);
  // Every attempt the record keeps, each headed by what it was (node, VM, build time), then its own lines.
  const builds = [...(record.previousBuilds ?? []), ...(record.build ? [record.build] : [])];
  const items = [
    ...builds.flatMap(({ log, ...build }) => [
      ...((build.startedAt ?? log[0]?.at) ? [{ at: (build.startedAt ?? log[0]?.at)!, event: 'build', data: attemptOf(build) as object }] : []),
      ...log.map((l) => ({ at: l.at, event: 'log', data: { attempt: build.attempt, ...l } as object })),
    ]),
    ...record.timeline.map((t) => ({ at: t.at, event: 'timeline', data: t as object })),
  ].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : order[a.event]! - order[b.event]!));
  for (const item of items) {
    if (ctx.json) ctx.out(JSON.stringify({ event: item.event, data: item.data }));
    else if (item.event === 'build') ctx.out(attemptText(item.data as BuildAttempt));
    else ctx.out(item.event === 'log' ? logText(item.data as LogLine) : timelineText(item.data as TimelineLine));
  }
  if (!ctx.json) ctx.out(statusText({ status: record.status, ...(record.build ? { build: record.build } : {}) }));
  return exitCodes.ok;
}

/**
 * With -f: the API's Server-Sent Events, printed as they come, until `end`. A dropped connection resumes where it
 * was (Last-Event-ID), so no line is printed twice or lost.
 */
async function follow(ctx: CliContext, serial: string): Promise<ExitCode> {
  let lastId: string | undefined;
  let retryMs = 2000;
  let reconnects = 0;
  for (;;) {
    let lostBecause: CliError | undefined;
    try {
      const body = await ctx.api().openStream(`/api/device_requests/${serial}/logs`, lastId);
      for await (const event of readServerSentEvents(body, (ms) => (retryMs = ms))) {
        reconnects = 0;
        if (event.id !== undefined) lastId = event.id;
        const done = printEvent(ctx, serial, event);
        if (done !== undefined) return done;
      }
      lostBecause = new CliError(`the log stream of ${serial} ended before the build did`, exitCodes.unavailable);
    } catch (err) {
      // A refusal (404, 401...) will not change by asking again; only a lost connection is worth a retry.
      if (!(err instanceof CliError)) lostBecause = new CliError(`the log stream of ${serial} broke: ${(err as Error).message}`, exitCodes.unavailable);
      else if (err.exitCode === exitCodes.unavailable) lostBecause = err;
      else throw err;
    }
    if (++reconnects > MAX_RECONNECTS) throw lostBecause;
    ctx.err(`(${lostBecause.message}; reconnecting)`);
    await sleep(retryMs);
  }
}

/** Prints one event; the exit code once the stream says it is over. */
function printEvent(ctx: CliContext, serial: string, event: ServerSentEvent): ExitCode | undefined {
  let data: unknown;
  try {
    data = JSON.parse(event.data);
  } catch {
    return undefined; // not one of ours: nothing to print
  }
  if (ctx.json) ctx.out(`{"event":${JSON.stringify(event.event)},${event.id !== undefined ? `"id":${JSON.stringify(event.id)},` : ''}"data":${event.data}}`);
  switch (event.event) {
    case 'log':
      if (!ctx.json) ctx.out(logText(data as LogLine));
      return undefined;
    case 'timeline':
      if (!ctx.json) ctx.out(timelineText(data as TimelineLine));
      return undefined;
    case 'status':
      if (!ctx.json) ctx.out(statusText(data as StatusLine));
      return undefined;
    case 'error':
      throw new CliError(`the API lost track of ${serial}: ${(data as { message?: string }).message ?? 'no reason given'}`, exitCodes.unavailable);
    case 'end': {
      const end = data as EndLine;
      if (end.build_state === 'completed') {
        if (!ctx.json) ctx.out(`--- ${serial}: built (${end.status})`);
        return exitCodes.ok;
      }
      ctx.err(`${serial}: ${end.build_state ? `build ${end.build_state}` : 'nothing was built'} (request ${end.status})`);
      return exitCodes.refused;
    }
    default:
      return undefined;
  }
}

/** The longest stage name (uploading-snippet): log lines' messages start in one column. */
const stageWidth = 17;
const logText = (l: LogLine) => `${clockTime(l.at)}  ${l.stage.padEnd(stageWidth)}  ${l.message}`;
const timelineText = (t: TimelineLine) => `${clockTime(t.at)}  ${'*'.padEnd(stageWidth)}  ${t.event}${t.by ? ` (by ${t.by})` : ''}`;
const attemptText = (b: BuildAttempt) => `=== build #${b.attempt} ${b.state}${b.vmid ? ` · VM ${b.vmid}` : ''}${b.node ? ` on ${b.node}` : ''}${b.durationSeconds !== undefined ? ` · took ${b.durationSeconds} s` : ''}`;
const statusText = (s: StatusLine) => `--- ${s.status}${s.build ? ` · build #${s.build.attempt} ${s.build.state} · ${s.build.stage} ${s.build.progress} %` : ''}`;
