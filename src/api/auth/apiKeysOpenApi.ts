import { z } from 'zod';
import { problemSchema, validationProblemSchema } from '../../contracts/apiSchemas';
import type { OperationDocHelpers } from '../day2/vmOperationsOpenApi';
import { keyRolesIssuableBy } from './apiKeysRules';
import { apiKeyIdParam, apiKeyListAnswerSchema, apiKeySchema, createApiKeyBody, issuedApiKeySchema } from '../../contracts/apiKeySchemas';
import { ISSUED_KEYS_TIMING } from './apiKeysIssued';

/** The API keys' paths in the OpenAPI document (src/api/auth/apiKeysRoutes.ts serves them). */
export function registerApiKeyPaths(h: OperationDocHelpers): void {
  const json = <T extends z.ZodType>(schema: T, description: string) => ({ description, content: { 'application/json': { schema } } });
  const managers = (Object.keys(keyRolesIssuableBy) as Array<keyof typeof keyRolesIssuableBy>).filter((r) => keyRolesIssuableBy[r].length);
  const who = `Roles: ${managers.join(', ')} (an admin sees and manages the keys of its own org, and issues ${keyRolesIssuableBy.admin.join(' and ')} keys only).`;
  const within = `Every API process of the deployment takes the change within ${ISSUED_KEYS_TIMING.refreshMs / 1000} s.`;
  const registry = { 503: json(problemSchema, 'The key registry is not running (a worker starts it) or Temporal did not answer.'), 504: h.temporal[504] };

  h.op({
    method: 'get',
    path: '/api/api_keys',
    operationId: 'listApiKeys',
    summary: 'The API keys and their last use',
    description: `Keys issued through this API and those of the key file (API_KEYS_FILE / API_KEYS), with who issued them, their expiry and when each was last used (to the minute). Never a key, nor its hash. ${who}`,
    security: h.secured,
    responses: { 200: json(apiKeyListAnswerSchema, 'The keys.'), ...h.problems, ...registry },
  });
  h.op({
    method: 'post',
    path: '/api/api_keys',
    operationId: 'createApiKey',
    summary: 'Issue an API key',
    description: `A new key, answered once in \`key\`: only its hash is kept, so it can never be shown again. ${within} ${who}`,
    security: h.secured,
    request: { body: { required: true, content: { 'application/json': { schema: createApiKeyBody } } } },
    responses: {
      201: { ...json(issuedApiKeySchema, 'Issued: the key, this once.'), headers: { Location: { description: 'The key in the list (DELETE revokes it).', schema: { type: 'string' as const } } } },
      400: h.invalidBody,
      ...h.problems,
      409: json(problemSchema, 'The registry refused it (it holds its limit of keys).'),
      413: h.tooLarge,
      429: h.tooMany,
      ...registry,
    },
  });
  h.op({
    method: 'delete',
    path: '/api/api_keys/{id}',
    operationId: 'revokeApiKey',
    summary: 'Revoke an API key',
    description: `The key stops working. ${within} A key of the key file is changed there (409). ${who}`,
    security: h.secured,
    request: { params: apiKeyIdParam },
    responses: {
      200: json(apiKeySchema, 'Revoked: the key as it was.'),
      400: json(validationProblemSchema, 'The id is malformed (the issue names it). Nothing was changed.'),
      ...h.problems,
      404: json(problemSchema, 'No such key, or one of another org.'),
      409: json(problemSchema, 'A key of the key file: remove it there.'),
      ...registry,
    },
  });
}
