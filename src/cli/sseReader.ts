import { StringDecoder } from 'node:string_decoder';

export interface ServerSentEvent {
  event: string;
  data: string;
  id?: string;
}

/**
 * Server-Sent Events out of a byte stream, as the HTML spec parses them: lines end in LF, CRLF or CR; a blank line
 * dispatches the event; `:` lines are comments (heartbeats); `retry:` is reported through `onRetry`. A chunk may end
 * anywhere, even inside a multi-byte character or between CR and LF.
 */
export async function* readServerSentEvents(body: AsyncIterable<Buffer | string>, onRetry?: (ms: number) => void): AsyncGenerator<ServerSentEvent> {
  const decoder = new StringDecoder('utf8');
  let buffer = '';
  let event = '';
  let data: string[] = [];
  let id: string | undefined;
  let sawData = false;

  const line = (text: string): ServerSentEvent | undefined => {
    if (text === '') {
      const dispatched = sawData ? { event: event || 'message', data: data.join('\n'), ...(id !== undefined ? { id } : {}) } : undefined;
      event = '';
      data = [];
      sawData = false;
      return dispatched;
    }
    if (text.startsWith(':')) return undefined;
    const colon = text.indexOf(':');
    const field = colon < 0 ? text : text.slice(0, colon);
    let value = colon < 0 ? '' : text.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') event = value;
    else if (field === 'data') {
      data.push(value);
      sawData = true;
    } else if (field === 'id' && !value.includes('\0')) id = value;
    else if (field === 'retry' && /^\d+$/.test(value)) onRetry?.(Number(value));
    return undefined;
  };

  for await (const chunk of body) {
    buffer += typeof chunk === 'string' ? chunk : decoder.write(chunk);
    for (;;) {
      const end = buffer.search(/[\r\n]/);
      if (end < 0) break;
      // A CR at the very end may be the first half of CRLF: wait for the next chunk to know.
      if (buffer[end] === '\r' && end === buffer.length - 1) break;
      const text = buffer.slice(0, end);
      buffer = buffer.slice(end + (buffer[end] === '\r' && buffer[end + 1] === '\n' ? 2 : 1));
      const dispatched = line(text);
      if (dispatched) yield dispatched;
    }
  }
  // A stream cut mid-event drops that event, as the spec says: it was never complete.
}
