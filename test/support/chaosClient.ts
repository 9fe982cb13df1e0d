import { setTimeout as sleep } from 'node:timers/promises';

/**
 * An API caller that keeps going while the API or Temporal is down, the way a careful script would: it retries
 * only what is safe to retry. A submission carries an `Idempotency-Key`, so that a retry after a lost answer finds
 * the request the first try created; an action is retried until the record shows it took effect.
 */
export interface Answer {
  status: number; // 0: no HTTP answer (refused, reset, timed out)
  body: any;
}

export interface ChaosClient {
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Answer>;
  /** Submits `body` and returns its serial, exactly once whatever fails. */
  submitOnce(body: object, idempotencyKey: string): Promise<string>;
  /** An action (`approve`, `complete`) until it is known to have taken effect; `done` says so from the record. */
  actOnce(serial: string, action: string, done: (status: string) => boolean): Promise<void>;
  /** GET until an answer comes: the record of `serial`. */
  record(serial: string): Promise<any>;
  /** Every request of `org` (all pages), until an answer comes. */
  listAll(org: string): Promise<Array<{ serial: string; status: string; period: { end?: string } }>>;
  /** How many calls had no answer or a 5xx: shows the chaos reached the client. */
  failures(): number;
}

const retryPauseMs = 500;
const giveUpAfterMs = 10 * 60_000;

export function chaosClient(apiUrl: string, key: string): ChaosClient {
  let failures = 0;

  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> => {
    try {
      const res = await fetch(`${apiUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(20_000),
      });
      const text = await res.text();
      let json: unknown = text;
      try {
        json = text ? JSON.parse(text) : undefined;
      } catch {
        /* an HTML error page from a dying server: keep the text */
      }
      if (res.status >= 500) failures++;
      return { status: res.status, body: json };
    } catch {
      failures++;
      return { status: 0, body: undefined };
    }
  };

  /** Repeats `attempt` while it answers undefined (not decided yet), for at most giveUpAfterMs. */
  const until = async <T>(what: string, attempt: () => Promise<T | undefined>): Promise<T> => {
    const deadline = Date.now() + giveUpAfterMs;
    for (;;) {
      const value = await attempt();
      if (value !== undefined) return value;
      if (Date.now() > deadline) throw new Error(`gave up on ${what} after ${giveUpAfterMs / 1000} s of failures`);
      await sleep(retryPauseMs);
    }
  };

  const listAll = (org: string) =>
    until(`listing ${org}`, async () => {
      const items: Array<{ serial: string; status: string; period: { end?: string } }> = [];
      let token: string | undefined;
      do {
        const q = new URLSearchParams({ org, page_size: '100', ...(token ? { page_token: token } : {}) });
        const a = await call('GET', `/api/device_requests?${q}`);
        if (a.status !== 200) return undefined;
        items.push(...a.body.items);
        token = a.body.next_page_token;
      } while (token);
      return items;
    });

  return {
    call,
    listAll,
    failures: () => failures,

    async submitOnce(body, idempotencyKey) {
      return until(`submitting ${idempotencyKey}`, async () => {
        const a = await call('POST', '/api/device_requests', body, { 'idempotency-key': idempotencyKey });
        // 200: a retry that found what an earlier try (whose answer was lost) created.
        if (a.status === 201 || a.status === 200) return a.body.serial as string;
        if (a.status >= 400 && a.status < 500) throw new Error(`submission ${idempotencyKey} refused: ${a.status} ${JSON.stringify(a.body)}`);
        return undefined; // no answer or 5xx: the same body under the same key again
      });
    },

    async actOnce(serial, action, done) {
      await until(`${action} of ${serial}`, async () => {
        const a = await call('POST', `/api/device_requests/${serial}/${action}`, {});
        if (a.status === 200) return true;
        if (a.status === 409 || a.status === 0 || a.status >= 500) {
          // Taken effect before its answer was lost (409: the state no longer allows it), or not yet: ask the record.
          const r = await call('GET', `/api/device_requests/${serial}`);
          if (r.status === 200 && done(r.body.status)) return true;
          if (a.status === 409 && r.status === 200) throw new Error(`${action} of ${serial} refused in ${r.body.status}: ${JSON.stringify(a.body)}`);
          return undefined;
        }
        throw new Error(`${action} of ${serial}: ${a.status} ${JSON.stringify(a.body)}`);
      });
    },

    record: (serial) =>
      until(`the record of ${serial}`, async () => {
        const a = await call('GET', `/api/device_requests/${serial}`);
        return a.status === 200 ? a.body : undefined;
      }),
  };
}
