import type { Response } from 'express';

/**
 * A Server-Sent Events stream on an express response: named events with JSON data and an id (what the browser sends
 * back as Last-Event-ID when it reconnects), a comment as heartbeat so proxies keep a quiet stream open, and an end
 * when the client goes away.
 */
export class EventStream {
  private ended = false;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly wakers = new Set<() => void>();

  constructor(
    private readonly res: Response,
    heartbeatMs: number,
  ) {
    res.status(200).set({
      'Content-Type': 'text/event-stream; charset=utf-8',
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      // nginx would otherwise buffer the stream and deliver it at the end.
      'X-Accel-Buffering': 'no',
    });
    res.flushHeaders();
    // Reconnect after 2 s when the connection drops; the id tells us where the client was.
    res.write('retry: 2000\n\n');
    this.heartbeat = setInterval(() => this.write(': heartbeat\n\n'), heartbeatMs);
    res.on('close', () => this.finish());
    // A client that left while the stream was being prepared (its first look at Temporal) closed the response
    // already, and 'close' is not emitted twice: without this the stream's poller would poll for ever.
    if (res.closed) this.finish();
  }

  get closed(): boolean {
    return this.ended;
  }

  send(event: string, data: unknown, id?: string): void {
    // JSON.stringify never emits a raw newline, so one `data:` line always holds the whole event.
    this.write(`${id !== undefined ? `id: ${id}\n` : ''}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  /** Waits `ms`, or less if the stream closes meanwhile. */
  sleep(ms: number): Promise<void> {
    if (this.ended) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.wakers.add(wake);
    });
  }

  close(): void {
    if (this.ended) return;
    this.finish();
    this.res.end();
  }

  private write(chunk: string): void {
    if (!this.ended) this.res.write(chunk);
  }

  private finish(): void {
    this.ended = true;
    clearInterval(this.heartbeat);
    for (const wake of [...this.wakers]) wake();
  }
}
