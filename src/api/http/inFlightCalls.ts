/** A call refused because the API is stopping: nothing was sent to Temporal. */
export class ApiStopping extends Error {
  constructor() {
    super('this API is stopping: the call was not sent to Temporal');
    this.name = 'ApiStopping';
  }
}

/**
 * The API's Temporal calls in flight. A call the SDK retries (Temporal busy, a query buffer full) waits on a timer
 * and sends again when it fires; if the connection was closed meanwhile, that send throws in the timer, out of every
 * handler's reach, and takes the process down. So the API's stop drains: no new call from then on, and the connection
 * closes only once the calls in flight have settled (each under the API's deadline, so the wait is bounded).
 */
export class InFlightCalls {
  private readonly calls = new Set<Promise<unknown>>();
  private draining = false;

  run<R>(call: () => Promise<R>): Promise<R> {
    if (this.draining) return Promise.reject(new ApiStopping());
    let running: Promise<R>;
    try {
      running = call();
    } catch (err) {
      return Promise.reject(err);
    }
    this.calls.add(running);
    const forget = () => this.calls.delete(running);
    running.then(forget, forget);
    return running;
  }

  get size(): number {
    return this.calls.size;
  }

  /** Refuses new calls and resolves once every call in flight has settled. */
  async drain(): Promise<void> {
    this.draining = true;
    await Promise.allSettled([...this.calls]);
  }
}
