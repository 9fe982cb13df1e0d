import { PveError, taskErrorText } from './errors';
import { authId, type Identity } from './permissions';
import { formatUpid, parseUpid, type Upid } from './upid';

/**
 * Worker tasks (pve-common `RESTEnvironment.pm fork_worker`): each has a UPID, a log whose last line decides the
 * exit status (`TASK OK`, `TASK WARNINGS: n`, `TASK ERROR: <msg>`), and runs asynchronously after the API call
 * returned its UPID. State changes happen inside the worker, i.e. when the task ends, not when it was posted.
 */
export interface TaskContext {
  readonly upid: string;
  log(line: string): void;
  /** A `warn` that counts towards `WARNINGS: n`. */
  warn(line: string): void;
  /**
   * Throws the failure a test injected for this task (`taskFailure`), or kills the worker (`workerKilled`);
   * workers call it right before they change any state, so that a failed or killed task leaves what PVE leaves.
   */
  failIfInjected(): void;
  /**
   * Aborted when someone stops the task (`DELETE /nodes/{node}/tasks/{upid}`): only a worker started as
   * `interruptible` is stopped this way; it cleans up and dies with `received interrupt`, as PVE's workers do on
   * the SIGTERM the stop sends (pve-common `RESTEnvironment.pm fork_worker`).
   */
  readonly signal: AbortSignal;
}

/** What a stopped worker dies with (pve-common `RESTEnvironment.pm`: the worker's SIGTERM handler). */
export const INTERRUPTED = 'received interrupt';

/**
 * The worker process died (daemon restart, node crash, OOM): nothing after this point runs, cleanup included,
 * and the task's log has no final `TASK ...` line, so its exit status is `unexpected status`. Workers must rethrow
 * it past their own cleanup (a killed clone leaves its `lock: clone` placeholder behind, as in PVE).
 */
export class WorkerKilled extends Error {
  constructor() {
    super('worker killed');
  }
}

export type Worker = (ctx: TaskContext) => Promise<void>;

export interface TaskRecord {
  upid: string;
  parsed: Upid;
  identity: Identity;
  status: 'running' | 'stopped';
  exitstatus?: string;
  endtime?: number;
  lines: string[];
  done: Promise<void>;
  /** Present while an interruptible task runs: stops it. */
  stop?(): void;
}

/** Fails, kills or warns matching tasks on purpose. */
export interface TaskFaults {
  takeTaskFailure(type: string, id: string, scope: { node: string; vmid?: number }): string | undefined;
  take(kind: 'workerKilled', scope: { node: string; vmid?: number; taskType: string; id: string }): unknown;
  take(kind: 'taskWarnings', scope: { node: string; vmid?: number; taskType: string; id: string }): { count?: number } | undefined;
}

export class TaskRegistry {
  /** Per node, newest last. */
  private readonly byNode = new Map<string, TaskRecord[]>();
  private readonly byUpid = new Map<string, TaskRecord>();
  private pstart = 0x0010_0000 + Math.floor(Math.random() * 0x0100_0000);

  constructor(
    private readonly allocatePid: () => number,
    private readonly faults: TaskFaults,
    /** Told when a task ended (its state changes have landed): a persisted world saves then. */
    private readonly onSettled?: () => void,
  ) {}

  /**
   * Creates the task and starts its worker; returns once the worker has run up to its first await, so whatever
   * the worker does synchronously at its start (like PVE's placeholder configs) is visible to the next request.
   */
  start(opts: { node: string; type: string; id: string; identity: Identity; worker: Worker; interruptible?: boolean }): TaskRecord {
    const parsed: Upid = {
      node: opts.node,
      pid: this.allocatePid(),
      pstart: this.pstart++,
      starttime: Math.floor(Date.now() / 1000),
      type: opts.type,
      id: opts.id,
      user: authId(opts.identity),
    };
    const upid = formatUpid(parsed);
    const lines: string[] = [];
    let warnings = 0;
    const record: TaskRecord = { upid, parsed, identity: opts.identity, status: 'running', lines, done: Promise.resolve() };
    const interrupt = new AbortController();
    if (opts.interruptible) record.stop = () => interrupt.abort(new Error(INTERRUPTED));
    const ctx: TaskContext = {
      upid,
      signal: interrupt.signal,
      log: (line) => lines.push(...line.split('\n')),
      warn: (line) => {
        warnings++;
        lines.push(`WARN: ${line}`);
      },
      failIfInjected: () => {
        const vmid = /^\d+$/.test(opts.id) ? Number(opts.id) : undefined;
        const injected = this.faults.takeTaskFailure(opts.type, opts.id, { node: opts.node, vmid });
        if (injected) throw new PveError(500, injected);
        if (this.faults.take('workerKilled', { node: opts.node, vmid, taskType: opts.type, id: opts.id })) throw new WorkerKilled();
      },
    };
    const finish = (exitstatus: string, lastLine: string) => {
      lines.push(lastLine);
      record.status = 'stopped';
      record.exitstatus = exitstatus;
      record.endtime = Math.floor(Date.now() / 1000);
    };
    record.done = (async () => {
      try {
        await opts.worker(ctx);
        const vmid = /^\d+$/.test(opts.id) ? Number(opts.id) : undefined;
        const warned = this.faults.take('taskWarnings', { node: opts.node, vmid, taskType: opts.type, id: opts.id });
        for (let i = 0; i < (warned ? (warned.count ?? 1) : 0); i++) ctx.warn(`injected warning ${i + 1} for ${opts.type}`);
        if (warnings > 0) finish(`WARNINGS: ${warnings}`, `TASK WARNINGS: ${warnings}`);
        else finish('OK', 'TASK OK');
      } catch (err) {
        if (err instanceof WorkerKilled) {
          record.status = 'stopped';
          record.exitstatus = 'unexpected status';
          record.endtime = Math.floor(Date.now() / 1000);
          return;
        }
        const text = taskErrorText(err);
        finish(text, `TASK ERROR: ${text}`);
      } finally {
        delete record.stop;
        this.onSettled?.();
      }
    })();
    const list = this.byNode.get(opts.node) ?? [];
    list.push(record);
    this.byNode.set(opts.node, list);
    this.byUpid.set(upid, record);
    return record;
  }

  get(upid: string): TaskRecord | undefined {
    return this.byUpid.get(upid);
  }

  onNode(node: string): readonly TaskRecord[] {
    return this.byNode.get(node) ?? [];
  }

  all(): TaskRecord[] {
    return [...this.byUpid.values()];
  }

  /**
   * Tasks of an earlier run of the simulator (a restored world). One still running then died with that run, as a
   * worker dies with its node's daemons: stopped, `unexpected status`, no final line.
   */
  restore(tasks: readonly PersistedTask[]): void {
    for (const t of tasks) {
      const parsed = parseUpid(t.upid);
      if (!parsed || this.byUpid.has(t.upid)) continue;
      const stopped = t.status === 'stopped';
      const record: TaskRecord = {
        upid: t.upid,
        parsed,
        identity: { ...t.identity },
        status: 'stopped',
        exitstatus: stopped ? t.exitstatus : 'unexpected status',
        endtime: stopped ? t.endtime : Math.floor(Date.now() / 1000),
        lines: [...t.lines],
        done: Promise.resolve(),
      };
      const list = this.byNode.get(parsed.node) ?? [];
      list.push(record);
      this.byNode.set(parsed.node, list);
      this.byUpid.set(t.upid, record);
    }
  }
}

/** A task as a snapshot keeps it: plain JSON. */
export type PersistedTask = Pick<TaskRecord, 'upid' | 'identity' | 'status' | 'exitstatus' | 'endtime' | 'lines'>;
