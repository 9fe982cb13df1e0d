/**
 * Admission of workflow starts: at most `limit` submissions wait on Temporal at once. When Temporal (or the box it
 * shares) falls behind, the extra ones are turned away before anything is started, so their callers hear a certain
 * "nothing was created" instead of a deadline whose outcome nobody knows — and the admitted ones stay fast.
 */
export class StartAdmission {
  private inFlight = 0;

  constructor(private readonly limit: number) {}

  /** Runs `start` when a slot is free; `undefined` when none is (nothing was run). */
  async run<T>(start: () => Promise<T>): Promise<{ value: T } | undefined> {
    if (this.inFlight >= this.limit) return undefined;
    this.inFlight++;
    try {
      return { value: await start() };
    } finally {
      this.inFlight--;
    }
  }

  get busy(): number {
    return this.inFlight;
  }
}
