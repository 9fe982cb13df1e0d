import { existsSync, readFileSync } from 'node:fs';
import { generateApiKey } from '../../src/api/auth/apiKeys';
import { PveClient } from '../../src/clients/pve';
import type { SimulatedWorld } from '../../src/simulators/world';
import { apiRequestDriver, type ApiAnswer, type ApiDrivenRequest, type ApiRequestDriver } from './apiRequestDriver';
import type { WaitOptions } from './requestDriver';

/**
 * What the end-to-end tests that drive a whole stack through its API with real guests share (the image import's and
 * the consultant's): calls signed with one of the test's keys, requests filed by its requester and approved by its
 * admin, the wait for Fulfilled that quotes the guest's console when the build fails, and a PVE client of the stack's
 * simulated world for what only the guest's agent can tell.
 */

/** The keys a test signs its calls with, by the name it gives them. */
export type KeyTable = Record<string, { key: string }>;

/** A call of the API as the key `as`; JSON bodies parsed. The timeout is long: the box is loaded and guests boot under TCG. */
export type StackApiCall<K extends KeyTable> = (method: string, path: string, as: keyof K, body?: unknown, timeoutMs?: number) => Promise<ApiAnswer>;

/** Calls of the API at `apiUrl` (read when called: the stack starts in `before`). */
export function stackApiCall<K extends KeyTable>(apiUrl: () => string, keys: K): StackApiCall<K> {
  return async (method, path, as, body, timeoutMs = 60_000) => {
    const res = await fetch(`${apiUrl()}${path}`, {
      method,
      headers: { authorization: `Bearer ${keys[as]!.key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await res.text();
    return { status: res.status, body: text && /json/.test(res.headers.get('content-type') ?? '') ? JSON.parse(text) : text };
  };
}

/** A requester of Acme Corp and its admin, each with a fresh key: who `requesterAndAdmin` files and approves as. */
export function acmeRequesterAndAdmin() {
  return {
    requester: { id: 'rita', role: 'requester', org: 'Acme Corp', email: 'rita@acme.example', key: generateApiKey() },
    admin: { id: 'ada', role: 'admin', org: 'Acme Corp', email: 'admin@acme.example', key: generateApiKey() },
  };
}

/** Requests filed by the key named `requester` and approved by the one named `admin`. */
export function requesterAndAdmin(api: StackApiCall<{ requester: { key: string }; admin: { key: string } }>): ApiRequestDriver {
  return apiRequestDriver((method, path, as, body) => api(method, path, as === 'approver' ? 'admin' : 'requester', body));
}

/**
 * The request's record once Fulfilled. A wait that fails (the build failed, or the time ran out) says the build's last
 * log lines and the end of the guest's serial console: a failed boot is otherwise only "timed out".
 */
export async function waitFulfilledQuotingGuest(request: ApiDrivenRequest, world: SimulatedWorld, opts: WaitOptions): Promise<ApiAnswer['body']> {
  try {
    return await request.waitForStatus('Fulfilled', opts);
  } catch (err) {
    const record = await request.record().catch(() => undefined);
    const vmid = record?.device?.vmid ?? record?.build?.vmid;
    const info = vmid ? world.pve.realGuest(vmid) : undefined;
    const guestConsole = info && existsSync(info.serialLog) ? readFileSync(info.serialLog, 'utf8').slice(-3000) : '(no guest console)';
    throw new Error(`${(err as Error).message}\nbuild log: ${JSON.stringify(record?.build?.log?.slice(-10))}\nguest console:\n${guestConsole}`, { cause: err });
  }
}

/** pveflow's own PVE client, with the token and CA the stack's world gave pveflow; the caller closes it. */
export function worldPveClient(world: SimulatedWorld): PveClient {
  return new PveClient({ endpoint: world.env.PVE_ENDPOINT, tokenId: world.env.PVE_TOKEN_ID, tokenSecret: world.env.PVE_TOKEN_SECRET, ca: readFileSync(world.env.PVE_CA_FILE, 'utf8'), timeoutMs: 60_000 });
}
