import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv2020, { type ErrorObject, type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { parse } from 'yaml';

/**
 * NetBird's own OpenAPI document, compiled with ajv: the yardstick for the bodies the simulator accepts and for the
 * responses it sends. The document is installed like the project's other dependencies, from NetBird's Go module
 * (scripts/install-reference-data.mjs, run by npm install, records the module, version and sha256 beside it), so
 * every schema here comes from the spec itself; nothing is copied by hand.
 */

/** Where the install step puts the document (git-ignored). */
export const NETBIRD_OPENAPI_FILE = join(__dirname, '..', '..', '..', '.tools', 'reference', 'netbird-openapi.yml');
/** The base URI the spec's `#/components/...` references are rewritten against. */
const SPEC_ID = 'urn:pveflow:netbird-openapi';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

export interface NetbirdContract {
  /** The spec's version line, for messages. */
  readonly version: string;
  /** Problems with a request body, in words; empty when the spec accepts it or the operation takes no body. */
  checkRequest(method: string, template: string, body: unknown): string[];
  /**
   * Problems with a response body. Success bodies are checked against the operation's response schema; error
   * bodies (the spec leaves most of them without content) against the `ErrorResponse` schema.
   */
  checkResponse(method: string, template: string, status: number, body: unknown): string[];
}

let cached: NetbirdContract | undefined;

/**
 * The compiled contract, parsed once. Without the document the simulator would accept what NetBird refuses, so it
 * does not start: the error names the install step.
 */
export function loadNetbirdContract(): NetbirdContract {
  if (cached) return cached;
  if (!existsSync(NETBIRD_OPENAPI_FILE)) {
    throw new Error(
      `NetBird's OpenAPI document is not installed (${NETBIRD_OPENAPI_FILE}); the NetBird simulator validates against it. ` + 'Install it with `npm run install:reference-data` (npm install runs it; it needs Go).',
    );
  }
  cached = compileContract(parse(readFileSync(NETBIRD_OPENAPI_FILE, 'utf8')) as JsonObject);
  return cached;
}

function compileContract(spec: JsonObject): NetbirdContract {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  // Used by schemas outside the operations we serve; declared so compiling them never trips over it.
  ajv.addFormat('cidr', /^[0-9a-fA-F:.]+\/\d{1,3}$/);
  const components = asObject(spec.components);
  ajv.addSchema({ $id: SPEC_ID, components: { schemas: components.schemas ?? {} } });

  const paths = asObject(spec.paths);
  const info = asObject(spec.info);
  const cache = new Map<string, ValidateFunction | null>();

  const operation = (method: string, template: string): JsonObject | undefined => {
    const item = paths[template];
    if (!item || typeof item !== 'object' || Array.isArray(item)) return undefined;
    const op = item[method.toLowerCase()];
    return op && typeof op === 'object' && !Array.isArray(op) ? op : undefined;
  };

  const compiled = (key: string, schema: Json | undefined): ValidateFunction | null => {
    if (cache.has(key)) return cache.get(key) ?? null;
    const fn = schema === undefined ? null : ajv.compile(anchorRefs(schema) as object);
    cache.set(key, fn);
    return fn;
  };

  const errorResponse = compiled('ErrorResponse', { $ref: '#/components/schemas/ErrorResponse' });

  return {
    version: `${String(info.title ?? 'NetBird API')} ${String(info.version ?? '')}`.trim(),

    checkRequest(method, template, body) {
      const op = operation(method, template);
      if (!op) return [`${method} ${template} is not an operation of the NetBird API`];
      const schema = jsonSchemaOf(op.requestBody);
      const validate = compiled(`req ${method} ${template}`, schema);
      if (!validate) return [];
      return validate(body) ? [] : describe(validate.errors);
    },

    checkResponse(method, template, status, body) {
      const op = operation(method, template);
      if (!op) return [`${method} ${template} is not an operation of the NetBird API`];
      if (status >= 400) {
        const problems = errorResponse && !errorResponse(body) ? describe(errorResponse.errors) : [];
        const code = (body as { code?: unknown } | null)?.code;
        if (code !== status) problems.push(`error body's code ${String(code)} differs from the HTTP status ${status}`);
        return problems;
      }
      const responses = asObject(op.responses);
      const declared = responses[String(status)];
      if (!declared) return [`status ${status} is not a documented response of ${method} ${template}`];
      const validate = compiled(`res ${method} ${template} ${status}`, jsonSchemaOf(declared));
      if (!validate) return [];
      return validate(body) ? [] : describe(validate.errors?.filter((e) => !(e.keyword === 'type' && SERVER_WRITES_NULL.some((where) => where.test(e.instancePath)))));
    },
  };
}

/**
 * Where NetBird's own server (v0.77.1) answers outside its own document, and the simulator answers as the server
 * does: a policy rule left without groups has `sources`/`destinations` null, where the document says array
 * (test/netbird-contract.test.ts shows it against the real server).
 */
const SERVER_WRITES_NULL = [/\/rules\/\d+\/(sources|destinations)$/];

function jsonSchemaOf(holder: Json | undefined): Json | undefined {
  const content = asObject(asObject(holder).content);
  const json = asObject(content['application/json']);
  return json.schema;
}

/** Inline schemas in `paths` refer to `#/components/...` of the whole document; point them at the added one. */
function anchorRefs(schema: Json): Json {
  if (Array.isArray(schema)) return schema.map(anchorRefs);
  if (!schema || typeof schema !== 'object') return schema;
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(schema)) {
    out[key] = key === '$ref' && typeof value === 'string' && value.startsWith('#') ? `${SPEC_ID}${value}` : anchorRefs(value);
  }
  return out;
}

function asObject(value: Json | undefined): JsonObject {
  return value && typeof value === 'object' && !Array.isArray(value) ? value : {};
}

/** ajv's errors as sentences an API user can act on: `/expires_in must be >= 86400`. */
export function describe(errors: ErrorObject[] | null | undefined): string[] {
  if (!errors?.length) return [];
  const seen = new Set<string>();
  for (const e of errors) {
    const where = e.instancePath || '(body)';
    let what = e.message ?? 'is invalid';
    if (e.keyword === 'enum') what += ` (${(e.params as { allowedValues: unknown[] }).allowedValues.join(', ')})`;
    if (e.keyword === 'additionalProperties') what += ` '${(e.params as { additionalProperty: string }).additionalProperty}'`;
    seen.add(`${where} ${what}`);
  }
  return [...seen];
}
