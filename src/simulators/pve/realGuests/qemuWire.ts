import { connect, type Socket } from 'node:net';

/**
 * The two JSON-lines protocols a QEMU process speaks on its unix sockets, one short connection per call:
 * QMP (greeting, `qmp_capabilities`, then the command; events are skipped) and the guest agent's QGA
 * (`guest-sync-delimited` first, with a fresh id: qemu-ga answers it after a 0xFF byte, and whatever an earlier,
 * abandoned call left in the channel comes before it and is skipped; then the command).
 */
export class WireTimeout extends Error {}

/** Reads JSON lines from `socket`; `next()` resolves with the next object. 0xFF (never valid UTF-8) is dropped. */
function lineReader(socket: Socket) {
  let buffer = Buffer.alloc(0);
  const queue: unknown[] = [];
  const waiters: Array<{ resolve: (v: unknown) => void; reject: (e: Error) => void }> = [];
  let failure: Error | undefined;
  socket.on('data', (chunk: Buffer) => {
    buffer = Buffer.concat([buffer, chunk.filter((b) => b !== 0xff)]);
    let nl: number;
    while ((nl = buffer.indexOf(0x0a)) >= 0) {
      const line = buffer.subarray(0, nl).toString('utf8').trim();
      buffer = buffer.subarray(nl + 1);
      if (!line) continue;
      let value: unknown;
      try {
        value = JSON.parse(line);
      } catch {
        continue; // the tail of an answer an abandoned call left in the channel
      }
      const waiter = waiters.shift();
      if (waiter) waiter.resolve(value);
      else queue.push(value);
    }
  });
  const fail = (err: Error) => {
    failure = err;
    for (const w of waiters.splice(0)) w.reject(err);
  };
  socket.on('error', fail);
  socket.on('close', () => fail(new Error('the socket closed')));
  return {
    next(): Promise<unknown> {
      if (queue.length) return Promise.resolve(queue.shift());
      if (failure) return Promise.reject(failure);
      return new Promise((resolve, reject) => waiters.push({ resolve, reject }));
    },
  };
}

type Reply = { return?: unknown; error?: { class?: string; desc?: string }; event?: string; QMP?: unknown };

async function withSocket<T>(path: string, timeoutMs: number, body: (socket: Socket) => Promise<T>): Promise<T> {
  const socket = connect(path);
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    return await Promise.race([
      body(socket),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new WireTimeout(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    socket.destroy();
  }
}

function unwrap(reply: Reply, command: string): unknown {
  if (reply.error) throw new Error(`${command}: ${reply.error.desc ?? reply.error.class ?? 'error'}`);
  return reply.return;
}

/** One QMP command on the monitor socket at `path`. */
export async function qmpCall(path: string, command: string, args?: Record<string, unknown>, timeoutMs = 5000): Promise<unknown> {
  return withSocket(path, timeoutMs, async (socket) => {
    const lines = lineReader(socket);
    await lines.next(); // the greeting
    socket.write(JSON.stringify({ execute: 'qmp_capabilities' }) + '\n');
    for (;;) if (!('event' in ((await lines.next()) as Reply))) break;
    socket.write(JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}) }) + '\n');
    for (;;) {
      const reply = (await lines.next()) as Reply;
      if (!('event' in reply)) return unwrap(reply, command);
    }
  });
}

let syncIds = Math.floor(Math.random() * 1_000_000);

/** One guest agent command on the virtio-serial socket at `path` (`guest-` prefix included in `command`). */
export async function qgaCall(path: string, command: string, args?: Record<string, unknown>, timeoutMs = 10_000): Promise<unknown> {
  return withSocket(path, timeoutMs, async (socket) => {
    const lines = lineReader(socket);
    const id = ++syncIds;
    socket.write(JSON.stringify({ execute: 'guest-sync-delimited', arguments: { id } }) + '\n');
    // Answers to earlier, abandoned calls may come first: wait for the answer to this sync.
    for (;;) if (((await lines.next()) as Reply).return === id) break;
    socket.write(JSON.stringify({ execute: command, ...(args ? { arguments: args } : {}) }) + '\n');
    return unwrap((await lines.next()) as Reply, command);
  });
}
