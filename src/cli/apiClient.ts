import { Agent, errors as undiciErrors, request, type Dispatcher } from 'undici';
import { CliError, usageError } from './cliError';
import { exitCodeForStatus, exitCodes } from './exitCodes';

export interface ApiClientOptions {
  /** The API's base URL, e.g. http://127.0.0.1:3000 (a path prefix behind a proxy is kept). */
  url: string;
  key?: string;
  /** Bound on each ordinary call: connecting, the answer's headers and its body. */
  timeoutMs: number;
}

/** A successful answer: its status and body as the API sent them (the CLI's --json prints `text` unchanged). */
export interface ApiAnswer<T = unknown> {
  status: number;
  text: string;
  body: T;
}

/** A log stream may be quiet between builds stages; the API sends a heartbeat every 15 s, so 2 minutes of silence is a dead link. */
const STREAM_IDLE_MS = 120_000;

/**
 * The pveflow HTTP API as the CLI sees it: JSON in, JSON out, every call bounded in time, and every failure already
 * phrased as the message and exit code the user gets. The key goes only into the Authorization header.
 */
export class ApiClient {
  private readonly base: string;
  private readonly agent: Agent;

  constructor(private readonly opts: ApiClientOptions) {
    let parsed: URL;
    try {
      parsed = new URL(opts.url);
    } catch {
      throw usageError(`the API URL "${opts.url}" is not a URL (expected e.g. http://127.0.0.1:3000)`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw usageError(`the API URL must be http:// or https://, not ${parsed.protocol}`);
    this.base = parsed.href.replace(/\/+$/, '');
    this.agent = new Agent({ connectTimeout: opts.timeoutMs, headersTimeout: opts.timeoutMs, bodyTimeout: opts.timeoutMs });
  }

  get url(): string {
    return this.base;
  }

  async get<T = unknown>(path: string, query: Record<string, string | undefined> = {}): Promise<ApiAnswer<T>> {
    return this.call<T>('GET', withQuery(path, query));
  }

  /** `answerWithinMs`: for a call the API itself may take longer to answer (a day-2 operation), when above --timeout. */
  async post<T = unknown>(path: string, body: unknown, headers: Record<string, string> = {}, answerWithinMs?: number): Promise<ApiAnswer<T>> {
    return this.call<T>('POST', path, body, headers, answerWithinMs);
  }

  async delete<T = unknown>(path: string, body?: unknown, headers: Record<string, string> = {}, answerWithinMs?: number): Promise<ApiAnswer<T>> {
    return this.call<T>('DELETE', path, body, headers, answerWithinMs);
  }

  /**
   * Opens a Server-Sent Events stream: the body once the API said 200, or the API's refusal as a CliError. The body
   * may stay quiet for up to STREAM_IDLE_MS between chunks (heartbeats keep a healthy stream well inside that).
   */
  async openStream(path: string, lastEventId?: string): Promise<AsyncIterable<Buffer>> {
    const res = await this.send('GET', path, undefined, { accept: 'text/event-stream', ...(lastEventId ? { 'last-event-id': lastEventId } : {}) }, STREAM_IDLE_MS);
    if (res.statusCode !== 200) throw refusal(res.statusCode, await readText(res, this.base));
    return res.body;
  }

  close(): Promise<void> {
    return this.agent.close();
  }

  private async call<T>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown, headers: Record<string, string> = {}, answerWithinMs?: number): Promise<ApiAnswer<T>> {
    const headersTimeout = answerWithinMs && answerWithinMs > this.opts.timeoutMs ? answerWithinMs : undefined;
    const res = await this.send(method, path, body, { ...headers, accept: 'application/json' }, undefined, headersTimeout);
    const text = await readText(res, this.base);
    if (res.statusCode >= 400) throw refusal(res.statusCode, text);
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      throw new CliError(`the API at ${this.base} answered ${res.statusCode} with something that is not JSON: is the URL the pveflow API?`, exitCodes.unavailable);
    }
    return { status: res.statusCode, text, body: parsed as T };
  }

  private async send(method: 'GET' | 'POST' | 'DELETE', path: string, body: unknown, headers: Record<string, string>, bodyTimeout?: number, headersTimeout?: number): Promise<Dispatcher.ResponseData> {
    if (!this.opts.key) {
      throw new CliError('no API key: set PVEFLOW_API_KEY (or pass --api-key, which other users can read in `ps`)', exitCodes.auth);
    }
    try {
      return await request(`${this.base}${path}`, {
        method,
        dispatcher: this.agent,
        headers: {
          ...headers,
          authorization: `Bearer ${this.opts.key}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
        ...(bodyTimeout ? { bodyTimeout } : {}),
        ...(headersTimeout ? { headersTimeout } : {}),
      });
    } catch (err) {
      throw unreachable(this.base, err);
    }
  }
}

function withQuery(path: string, query: Record<string, string | undefined>): string {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined) params.set(k, v);
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

async function readText(res: Dispatcher.ResponseData, base: string): Promise<string> {
  try {
    return await res.body.text();
  } catch (err) {
    throw unreachable(base, err);
  }
}

/** The API's error answer ({error, detail} or {error, issues[]}) as a message, one line per invalid field. */
export function refusal(status: number, text: string): CliError {
  let answer: { error?: unknown; detail?: unknown; issues?: unknown } = {};
  try {
    answer = JSON.parse(text) ?? {};
  } catch {
    // Not ours (a proxy's HTML page, say): the status alone is the message.
  }
  const error = typeof answer.error === 'string' ? answer.error : `HTTP ${status}`;
  const detail = typeof answer.detail === 'string' ? `: ${answer.detail}` : '';
  const issues = Array.isArray(answer.issues) ? answer.issues.map((i: { field?: unknown; reason?: unknown }) => `${String(i?.field ?? '?')}: ${String(i?.reason ?? '?')}`) : [];
  return new CliError(`${error} (${status})${detail}`, exitCodeForStatus(status), issues, text);
}

/** A call that never got an answer: which API, and why in words (refused, timed out, name unknown). */
export function unreachable(base: string, err: unknown): CliError {
  return new CliError(`cannot reach the pveflow API at ${base}: ${reasonOf(err)}`, exitCodes.unavailable);
}

function reasonOf(err: unknown): string {
  if (err instanceof undiciErrors.ConnectTimeoutError) return 'connecting timed out';
  if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError) return 'it did not answer in time';
  const code = (err as { code?: unknown; cause?: { code?: unknown } })?.code ?? (err as { cause?: { code?: unknown } })?.cause?.code;
  if (code === 'ECONNREFUSED') return 'connection refused (is it running, and is the URL right?)';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'the host name does not resolve';
  if (code === 'ECONNRESET' || code === 'UND_ERR_SOCKET') return 'the connection was dropped';
  return err instanceof Error ? err.message : String(err);
}
