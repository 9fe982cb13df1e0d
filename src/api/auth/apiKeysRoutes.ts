import { randomBytes } from 'node:crypto';
import { WorkflowNotFoundError, WorkflowUpdateFailedError } from '@temporalio/client';
import { Router, type Response } from 'express';
import { issueKeyUpdate, issuedKeysQuery, keyUseQuery, revokeKeyUpdate, type IssuedKey, type KeyUse } from '../../contracts/apiKeyRegistryMessages';
import { apiKeyRegistryWorkflowId } from '../../contracts/workflowIds';
import { isExpired } from '../../domain/apiKeyRegistry';
import type { ApiContext } from '../http/context';
import { badRequest, badRequestIssues, problem } from '../http/problems';
import { sendTemporalError } from '../http/temporalErrors';
import { actorOf, generateApiKey, hashApiKey, type Principal } from './apiKeys';
import type { DeploymentKeys } from './apiKeysIssued';
import { keyIssueRefusal, keyManagementRefusal, keyScopeOf } from './apiKeysRules';
import { apiKeyIdParam, createApiKeyBody, type ApiKeyWire } from '../../contracts/apiKeySchemas';
import { principalOf } from './authenticate';

/**
 * `/api/api_keys`: keys issued and revoked at run time, held by the key registry workflow (src/workflows/
 * apiKeyRegistry.ts). The key is generated here and answered once; only its hash goes to Temporal. Every API process
 * takes a change within seconds (DeploymentKeys); this one at once, by reading the registry again after it.
 */
export function apiKeyRoutes(ctx: ApiContext, keys: DeploymentKeys): Router {
  const router = Router();
  const registry = () => ctx.client.workflow.getHandle(apiKeyRegistryWorkflowId(ctx.taskQueue));
  const manager = (res: Response): Principal | undefined => {
    const p = principalOf(res);
    const refusal = keyManagementRefusal(p);
    if (refusal) return void problem(res, 403, 'forbidden', refusal);
    return p;
  };

  router.get('/', async (_req, res) => {
    const p = manager(res);
    if (!p) return;
    const scope = keyScopeOf(p);
    let issued: IssuedKey[];
    let used: KeyUse;
    try {
      [issued, used] = await ctx.temporal(() =>
        Promise.all([
          registry()
            .query(issuedKeysQuery, {})
            .then((a) => a.keys ?? []),
          registry().query(keyUseQuery),
        ]),
      );
    } catch (err) {
      if (!(err instanceof WorkflowNotFoundError)) return sendTemporalError(res, err);
      [issued, used] = [[], {}];
    }
    const now = Date.now();
    const fromFile: ApiKeyWire[] = keys.file.principals().map((f) => ({
      id: f.id,
      name: f.id,
      role: f.role,
      ...(f.role !== 'operator' ? { org: f.org } : {}),
      ...(f.email !== undefined ? { email: f.email } : {}),
      source: 'file',
      expired: false,
      ...(used[f.id] ? { last_used_at: used[f.id] } : {}),
    }));
    const items = [...fromFile, ...issued.map((k) => toWire(k, used[k.id], now))].filter((k) => scope === undefined || k.org === scope);
    res.set('Cache-Control', 'no-store').json({ items });
  });

  router.post('/', async (req, res) => {
    const p = manager(res);
    if (!p) return;
    const body = createApiKeyBody.safeParse(req.body ?? {});
    if (!body.success) return badRequest(res, body.error);
    const ask = body.data;
    // An admin's key is for the admin's org unless it says otherwise (and then it is refused below).
    const org = ask.role === 'operator' ? ask.org : (ask.org ?? keyScopeOf(p));
    // Rules between fields, named as the document states them (key-fields, key-expiry).
    const issues: Array<{ field: string; reason: string; rule: string }> = [];
    if (ask.role === 'operator' && ask.org !== undefined) issues.push({ field: 'org', reason: 'an operator key has no org (it works across all)', rule: 'key-fields' });
    if (ask.role !== 'operator' && org === undefined) issues.push({ field: 'org', reason: `a ${ask.role} key needs an org`, rule: 'key-fields' });
    if (ask.role === 'requester' && ask.email === undefined) issues.push({ field: 'email', reason: 'a requester key needs the email it files requests as', rule: 'key-fields' });
    if (ask.expires_at !== undefined && !(Date.parse(ask.expires_at) > Date.now())) issues.push({ field: 'expires_at', reason: 'must be in the future', rule: 'key-expiry' });
    if (issues.length) return badRequestIssues(res, issues);
    const refusal = keyIssueRefusal(p, { role: ask.role, ...(org !== undefined ? { org } : {}) });
    if (refusal) return problem(res, 403, 'forbidden', refusal);

    const secret = generateApiKey();
    let id = newKeyId();
    while (keys.file.principalById(id)) id = newKeyId();
    const args = {
      id,
      name: ask.name,
      role: ask.role,
      ...(org !== undefined ? { org } : {}),
      ...(ask.email !== undefined ? { email: ask.email } : {}),
      owner: actorOf(p),
      ...(ask.expires_at !== undefined ? { expiresAt: new Date(ask.expires_at).toISOString() } : {}),
      sha256: hashApiKey(secret),
    };
    let key: IssuedKey;
    try {
      // The key's id is the update's id: a retry of this very call is the same issue, never a second key.
      key = await ctx.temporal(() => registry().executeUpdate(issueKeyUpdate, { args: [args], updateId: `issue-${id}` }));
    } catch (err) {
      return sendRegistryError(res, err);
    }
    await keys.refresh();
    res
      .status(201)
      .location(`/api/api_keys/${key.id}`)
      .set('Cache-Control', 'no-store')
      .json({ ...toWire(key, undefined, Date.now()), key: secret });
  });

  router.delete('/:id', async (req, res) => {
    const p = manager(res);
    if (!p) return;
    const params = apiKeyIdParam.safeParse(req.params);
    if (!params.success) return badRequest(res, params.error, 'path');
    const { id } = params.data;
    const configured = keys.file.principalById(id);
    if (configured && (keyScopeOf(p) === undefined || (configured.role !== 'operator' && configured.org === keyScopeOf(p)))) {
      return problem(res, 409, 'conflict', `key ${id} is configured in API_KEYS_FILE or API_KEYS: remove it there and restart the API processes`);
    }
    let key: IssuedKey;
    try {
      const scope = keyScopeOf(p);
      key = await ctx.temporal(() => registry().executeUpdate(revokeKeyUpdate, { args: [{ id, by: actorOf(p), ...(scope !== undefined ? { org: scope } : {}) }] }));
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError) return problem(res, 404, 'not found', err.cause?.message ?? `no API key ${id}`);
      return sendRegistryError(res, err);
    }
    await keys.refresh();
    res.set('Cache-Control', 'no-store').json(toWire(key, undefined, Date.now()));
  });
  return router;
}

function newKeyId(): string {
  return `key-${randomBytes(8).toString('hex')}`;
}

function toWire(k: IssuedKey, lastUsed: string | undefined, now: number): ApiKeyWire {
  return {
    id: k.id,
    name: k.name,
    role: k.role,
    ...(k.org !== undefined ? { org: k.org } : {}),
    ...(k.email !== undefined ? { email: k.email } : {}),
    source: 'issued',
    owner: k.owner,
    created_at: k.createdAt,
    ...(k.expiresAt !== undefined ? { expires_at: k.expiresAt } : {}),
    expired: isExpired(k, now),
    ...(lastUsed !== undefined ? { last_used_at: lastUsed } : {}),
  };
}

function sendRegistryError(res: Response, err: unknown): void {
  if (err instanceof WorkflowNotFoundError) {
    return problem(res, 503, 'key registry not running', 'the API key registry is started by a pveflow worker at its start: start a worker of this release, then try again');
  }
  if (err instanceof WorkflowUpdateFailedError) return problem(res, 409, 'refused', err.cause?.message ?? err.message);
  sendTemporalError(res, err);
}
