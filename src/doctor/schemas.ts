import { z } from 'zod';

/**
 * `GET /access/permissions?path=<p>`: `{ "<path>": { "<privilege>": <propagate 0|1> } }`. The value says whether
 * the privilege propagates below the path, not whether it is granted: a listed privilege is a granted one.
 */
export const permissionsSchema = z.record(z.string(), z.record(z.string(), z.union([z.number(), z.boolean(), z.string()])));
export type PermissionsTree = z.infer<typeof permissionsSchema>;

/** `GET /nodes/{node}/storage?storage=<s>`: only the fields the snippets check reads. */
export const nodeStorageSchema = z.array(
  z
    .object({
      storage: z.string(),
      content: z.string().optional(),
      enabled: z.union([z.number(), z.boolean()]).optional(),
      active: z.union([z.number(), z.boolean()]).optional(),
    })
    .loose(),
);
