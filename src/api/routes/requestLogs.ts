import type { Request, Response } from 'express';
import { statusQuery } from '../../contracts/messages';
import type { BuildLogLine, BuildTask, RequestRecord, TimelineEntry } from '../../contracts/types';
import type { ApiContext } from '../http/context';
import { buildFinished, currentBuild } from '../day2/requestBuild';
import { ApiStopping } from '../http/inFlightCalls';
import { EventStream } from '../reads/sse';
import { sendTemporalError } from '../http/temporalErrors';
import { requestWorkflowId } from '../../contracts/workflowIds';

/** Where a client is in a request's stream: the build attempt, lines of its log, entries of the timeline seen. */
interface Cursor {
  attempt: number;
  log: number;
  timeline: number;
}

interface Snapshot {
  record: RequestRecord;
  /** The build's log as its own workflow has it right now (live), or as the request recorded it (finished). */
  build?: BuildTask;
  open: boolean;
  /** The running build could not be asked: its lines are not known this time, so neither is a status sent. */
  buildUnknown?: boolean;
}

/** Consecutive failed polls before the stream gives up and says so. */
const MAX_FAILURES = 3;

/**
 * `GET /api/device_requests/:serial/logs`: the build's log lines as they appear (polling the build's query), and the
 * request's timeline, as Server-Sent Events. Ends with `end` once the build is done (or the request has ended); a
 * request long done replays its history and ends. A reconnecting client (Last-Event-ID) resumes where it was.
 *
 * Events: `log` {attempt, at, stage, message} · `timeline` {at, event, by?} · `status` {status, build?} (after the
 * lines that led to it) ·
 * `end` {status, build_state?} · `error` {message}. Heartbeat: a `: heartbeat` comment.
 */
export async function streamRequestLogs(ctx: ApiContext, req: Request, res: Response, serial: string): Promise<void> {
  let snapshot: Snapshot;
  try {
    // The first look happens before the stream opens, so that Temporal being unreachable is an HTTP status.
    snapshot = await snapshotOf(ctx, serial);
  } catch (err) {
    return sendTemporalError(res, err, serial);
  }
  const cursor = parseCursor(req.get('last-event-id')) ?? { attempt: 0, log: 0, timeline: 0 };
  const stream = new EventStream(res, ctx.timings.sseHeartbeatMs);
  let lastStatus = '';
  let failures = 0;

  for (;;) {
    const { record, build } = snapshot;
    if (build && build.attempt !== cursor.attempt) Object.assign(cursor, { attempt: build.attempt, log: 0 });
    // The lines first, then the status they led to: a reader never sees `Fulfilled` before the build's last line.
    for (const item of newItems(cursor, build?.log ?? [], record.timeline)) {
      if ('stage' in item) {
        cursor.log += 1;
        stream.send('log', { attempt: cursor.attempt, at: item.at, stage: item.stage, message: item.message }, idOf(cursor));
      } else {
        cursor.timeline = timelinePositionAfter(item, record.timeline);
        stream.send('timeline', item, idOf(cursor));
      }
    }
    const status = { status: record.status, ...(build ? { build: { attempt: build.attempt, state: build.state, stage: build.stage, progress: build.progress } } : {}) };
    if (!snapshot.buildUnknown && JSON.stringify(status) !== lastStatus) {
      lastStatus = JSON.stringify(status);
      stream.send('status', status, idOf(cursor));
    }
    if (isDone(snapshot)) {
      stream.send('end', { status: record.status, ...(record.build ? { build_state: record.build.state } : {}) }, idOf(cursor));
      return stream.close();
    }

    await stream.sleep(ctx.timings.logPollMs);
    if (stream.closed) return; // the client went away
    try {
      snapshot = await snapshotOf(ctx, serial);
      failures = 0;
    } catch (err) {
      // A stopping API sends nothing more to Temporal: the stream ends now rather than after its failures.
      if (err instanceof ApiStopping || ++failures >= MAX_FAILURES) {
        stream.send('error', { message: `lost touch with request ${serial}: ${err instanceof Error ? err.message : String(err)}; reconnect to resume` });
        return stream.close();
      }
    }
  }
}

async function snapshotOf(ctx: ApiContext, serial: string): Promise<Snapshot> {
  const handle = ctx.client.workflow.getHandle(requestWorkflowId(serial));
  const [record, description] = await Promise.all([ctx.temporal(() => handle.query(statusQuery)), ctx.temporal(() => handle.describe())]);
  const open = description.status.name === 'RUNNING';
  // A build not asked this time: the request's own copy is all there is for this poll, and its status may be ahead
  // of the lines it holds.
  const { build, unknown } = await currentBuild(ctx, record);
  return { record, build, open, ...(unknown ? { buildUnknown: true } : {}) };
}

/** Done: the request has ended, or its current build has finished (the record already holds its final log). */
function isDone({ record, open }: Snapshot): boolean {
  return !open || (record.build !== undefined && buildFinished(record.build));
}

/** Log lines and timeline entries past the cursor, in time order (log first on a tie: it says what happened). */
function newItems(cursor: Cursor, log: BuildLogLine[], timeline: TimelineEntry[]): Array<BuildLogLine | TimelineEntry> {
  const lines = log.slice(cursor.log);
  const entries = timeline.slice(timelineIndexOf(cursor.timeline, timeline));
  const out: Array<BuildLogLine | TimelineEntry> = [];
  let i = 0;
  let j = 0;
  while (i < lines.length || j < entries.length) {
    if (j >= entries.length || (i < lines.length && lines[i]!.at <= entries[j]!.at)) out.push(lines[i++]!);
    else out.push(entries[j++]!);
  }
  return out;
}

/*
 * The cursor counts timeline entries as they happened. A long timeline keeps its first entry and its latest, with one
 * entry at index 1 that `summarises` the ones dropped between (src/workflows/request/bounds.ts): the positions of the
 * entries after it are shifted by what it stands for.
 */
const hiddenBy = (timeline: TimelineEntry[]) => (timeline[1]?.summarises ?? 1) - 1;
const timelineIndexOf = (position: number, timeline: TimelineEntry[]) => (position <= 1 ? position : Math.max(1, position - hiddenBy(timeline)));
function timelinePositionAfter(entry: TimelineEntry, timeline: TimelineEntry[]): number {
  const index = timeline.indexOf(entry);
  return index < 1 ? index + 1 : index + 1 + hiddenBy(timeline);
}

const idOf = (c: Cursor) => `${c.attempt}.${c.log}.${c.timeline}`;

function parseCursor(id: string | undefined): Cursor | undefined {
  const m = id ? /^(\d{1,6})\.(\d{1,9})\.(\d{1,9})$/.exec(id) : null;
  return m ? { attempt: Number(m[1]), log: Number(m[2]), timeline: Number(m[3]) } : undefined;
}
