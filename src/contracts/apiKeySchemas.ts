import { z } from 'zod';
import { dateTimeSchema, emailSchema, orgSchema } from '../domain/deviceRequest';

/** The API keys' wire shapes (/api/api_keys): what the routes parse and the OpenAPI document states. */

const roleSchema = z.enum(['requester', 'admin', 'operator']);

export const createApiKeyBody = z
  .strictObject({
    name: z
      .string()
      .min(1, 'name the key (what it is for)')
      .max(80, 'at most 80 characters')
      // A plain pattern (no `u` flag: a document's patterns carry none), so the control ranges are spelt out.
      // eslint-disable-next-line no-control-regex -- control characters are exactly what a key's name may not hold
      .regex(/^[^\u0000-\u001f\u007f-\u009f]+$/, 'no control characters')
      .meta({ description: 'What the key is for, shown in the list.', example: 'ci-pipeline' }),
    role: roleSchema.meta({ description: 'requester and admin keys act in their org; an operator key across all (operators only issue those).' }),
    org: orgSchema.optional().meta({ description: "The key's org (rule key-fields): required for a requester or admin key (an admin's own org when an admin omits it), absent for an operator key." }),
    email: emailSchema('ci@acme.example').optional().meta({ description: 'Who the key acts as (rule key-fields): required for a requester key (a requester files as itself).' }),
    expires_at: dateTimeSchema('2030-06-24T18:00:00Z').optional().meta({ description: 'When the key stops working; in the future (rule key-expiry); absent: never.' }),
  })
  .meta({ id: 'ApiKeyCreation' });

export type CreateApiKeyBody = z.infer<typeof createApiKeyBody>;

export const apiKeyIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$/, 'letters, digits, . _ @ - (at most 64)')
  .meta({ example: 'key-0f3a9c2e71d4b658' });
export const apiKeyIdParam = z.strictObject({ id: apiKeyIdSchema });

export const apiKeySchema = z
  .object({
    id: apiKeyIdSchema,
    name: z.string(),
    role: roleSchema,
    org: z.string().optional(),
    email: z.string().optional(),
    source: z.enum(['issued', 'file']).meta({ description: 'issued: through this API, revocable here; file: API_KEYS_FILE / API_KEYS, changed there (and a restart).' }),
    owner: z.string().optional().meta({ description: 'Who issued it (issued keys).' }),
    created_at: z.string().optional(),
    expires_at: z.string().optional(),
    expired: z.boolean(),
    last_used_at: z.string().optional().meta({ description: 'When it was last used, to the minute (absent: not used yet).' }),
  })
  .meta({ id: 'ApiKey' });

export type ApiKeyWire = z.infer<typeof apiKeySchema>;

export const issuedApiKeySchema = apiKeySchema.extend({ key: z.string().meta({ description: 'The key itself: shown this once and never again (only its hash is kept).' }) }).meta({ id: 'IssuedApiKey' });

export const apiKeyListAnswerSchema = z.object({ items: z.array(apiKeySchema) }).meta({ id: 'ApiKeyList' });
