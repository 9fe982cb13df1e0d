/**
 * The minimal fault switchboard for tests: make the next task(s) of a type fail with a given text, as a real PVE
 * task would (HTTP 200 + UPID, then `exitstatus` = the error). More fault classes belong here later.
 */
export interface TaskFailureFault {
  /** Task type, e.g. `qmclone`, `qmstart`. */
  type: string;
  /** Only tasks whose UPID id matches (for `qmclone`: the source vmid). */
  id?: string;
  error: string;
  /** How many tasks to fail; default 1. */
  times?: number;
}

export class Faults {
  private taskFailures: (TaskFailureFault & { left: number })[] = [];

  set(faults: { taskFailure?: TaskFailureFault }): void {
    if (faults.taskFailure) this.taskFailures.push({ ...faults.taskFailure, left: faults.taskFailure.times ?? 1 });
  }

  clear(): void {
    this.taskFailures = [];
  }

  takeTaskFailure(type: string, id: string): string | undefined {
    const f = this.taskFailures.find((x) => x.type === type && (x.id === undefined || x.id === id) && x.left > 0);
    if (!f) return undefined;
    f.left--;
    return f.error;
  }
}
