import type { ImageList, UpdateAnswer } from '../contracts/apiSchemas';
import type { RequestRecord, RequestStatus, TemplateInfo } from '../contracts/types';

/**
 * The console's only way to the system: the HTTP API, with the session's key as a bearer token. Shapes are the API's
 * own (types imported, never redefined); an error keeps the API's words so that the page can show them.
 */
export type { ImageList, RequestRecord, RequestStatus, TemplateInfo, UpdateAnswer };
export type ImageInfo = ImageList['images'][number];

export interface RequestSummary {
  serial: string;
  name?: string;
  org: string;
  status: RequestStatus;
  build_status?: string;
  vm_id?: number;
  node?: string;
  consultants: string[];
  period: { start?: string; end?: string };
  submitted_at: string;
  closed_at?: string;
  open: boolean;
}

export interface RequestPage {
  items: RequestSummary[];
  next_page_token?: string;
}

export interface Credentials {
  serial: string;
  username: string;
  password: string;
  root_password: string;
  revealed_to: string;
  revealed_at: string;
}

export interface Issue {
  field: string;
  reason: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly issues: Issue[] = [],
  ) {
    super(message);
  }
}

/** Every call: bounded, so a hung API shows as an error instead of a page that never loads. */
const TIMEOUT_MS = 20_000;

export function authHeader(key: string): Record<string, string> {
  return { authorization: `Bearer ${key}` };
}

export async function api<T>(key: string, path: string, init: { method?: string; body?: unknown; timeoutMs?: number } = {}): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, {
      method: init.method ?? 'GET',
      headers: { ...authHeader(key), accept: 'application/json', ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
      body: init.body !== undefined ? JSON.stringify(init.body) : undefined,
      signal: AbortSignal.timeout(init.timeoutMs ?? TIMEOUT_MS),
      cache: 'no-store',
    });
  } catch (err) {
    const timedOut = err instanceof DOMException && err.name === 'TimeoutError';
    throw new ApiError(0, timedOut ? 'The API did not answer in time. Try again.' : 'The API cannot be reached. Check your connection and try again.');
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  if (!res.ok) {
    const problem = (body ?? {}) as { error?: string; detail?: string; issues?: Issue[] };
    const message = problem.detail ?? problem.error ?? `The API answered ${res.status}.`;
    throw new ApiError(res.status, message, Array.isArray(problem.issues) ? problem.issues : []);
  }
  return body as T;
}

/** The serial's path segment: serials are VM-XXXXX, but never trust a value from the address bar. */
export const requestPath = (serial: string) => `/api/device_requests/${encodeURIComponent(serial)}`;
