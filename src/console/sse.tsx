import { authHeader } from './api';

export interface ServerEvent {
  event: string;
  data: string;
  id?: string;
}

/**
 * Server-Sent Events over fetch(): EventSource cannot send an Authorization header, and the key must never go into a
 * URL. Parses the text/event-stream format (events, ids, retry; comments are heartbeats) and reconnects with
 * Last-Event-ID after a dropped connection, as EventSource would. Returns after the server's `end` event, when
 * `signal` aborts, or after repeated failures (reported through `onError`).
 */
export async function followEventStream(url: string, key: string, onEvent: (e: ServerEvent) => void, signal: AbortSignal, onError: (message: string) => void = () => {}): Promise<void> {
  let lastId: string | undefined;
  let retryMs = 2000;
  for (let failures = 0; !signal.aborted;) {
    try {
      const res = await fetch(url, {
        headers: { ...authHeader(key), accept: 'text/event-stream', ...(lastId ? { 'last-event-id': lastId } : {}) },
        signal,
        cache: 'no-store',
      });
      if (!res.ok || !res.body) {
        // 4xx will not get better by retrying: the request is gone or the key is no longer good.
        if (res.status >= 400 && res.status < 500) return onError(`The live log is not available (${res.status}).`);
        throw new Error(`HTTP ${res.status}`);
      }
      let ended = false;
      for await (const e of parseEventStream(res.body)) {
        failures = 0;
        if (e.id !== undefined) lastId = e.id;
        if (e.retry !== undefined) retryMs = e.retry;
        if (e.event === 'end') ended = true;
        if (e.event !== undefined) onEvent({ event: e.event, data: e.data, ...(e.id !== undefined ? { id: e.id } : {}) });
      }
      // Closed without `end`: the server lost touch or the connection dropped; resume where we were.
      if (ended) return;
      throw new Error('stream closed early');
    } catch {
      if (signal.aborted) return;
      if (++failures >= 5) return onError('Lost the live log; reload the page to try again.');
      onError('Reconnecting to the live log…');
    }
    await new Promise((r) => setTimeout(r, retryMs));
  }
}

interface RawEvent {
  event?: string;
  data: string;
  id?: string;
  retry?: number;
}

async function* parseEventStream(body: ReadableStream<Uint8Array>): AsyncGenerator<RawEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let current: RawEvent = { data: '' };
  let hasData = false;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buffer.search(/\r\n|\r|\n/)) >= 0) {
        // A lone CR at the end may be the first half of a CRLF split across chunks: wait for the next one.
        if (buffer[nl] === '\r' && nl === buffer.length - 1) break;
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + (buffer.startsWith('\r\n', nl) ? 2 : 1));
        if (line === '') {
          // A blank line dispatches; a block of only retry/comments dispatches nothing but may set retry.
          if (hasData || current.event !== undefined) yield { ...current, event: current.event ?? 'message' };
          else if (current.retry !== undefined) yield current;
          current = { data: '' };
          hasData = false;
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') current.event = value;
        else if (field === 'data') {
          current.data = hasData ? `${current.data}\n${value}` : value;
          hasData = true;
        } else if (field === 'id') current.id = value;
        else if (field === 'retry' && /^\d+$/.test(value)) current.retry = Number(value);
      }
    }
  } finally {
    reader.releaseLock();
  }
}
