import Ajv, { type ValidateFunction } from 'ajv';
import addFormats from 'ajv-formats';

/**
 * Checks answers against the OpenAPI document the API serves, with ajv over the document's own JSON schemas (not the
 * zod schemas the server uses): a status the operation does not list, a body of another shape, a content type it
 * does not promise — each is a failure naming the call. An unlisted path must be 404 and a listed path's unserved
 * method 405 with Allow, both with a Problem body.
 */
export interface OpenApiDocument {
  paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: unknown }>; headers?: Record<string, unknown> }> }>>;
  components?: Record<string, unknown>;
}

export interface Answer {
  status: number;
  headers: Headers;
  body: unknown;
}

export class ResponseChecker {
  private readonly ajv = new Ajv({ strict: false, allErrors: true });
  private readonly compiled = new Map<string, ValidateFunction>();
  private readonly templates: Array<{ template: string; pattern: RegExp }>;
  /** Every (operation, status) an answer was checked for: what the tests covered. */
  readonly seen = new Set<string>();

  private readonly doc: OpenApiDocument;

  constructor(doc: OpenApiDocument) {
    addFormats(this.ajv);
    this.doc = withoutUntypedNullable(doc);
    this.templates = Object.keys(doc.paths).map((template) => ({
      template,
      pattern: new RegExp(
        `^${template
          .split('/')
          .map((seg) => (/^\{.+\}$/.test(seg) ? '[^/]+' : seg.replace(/[.*+?^$()|[\]\\]/g, '\\$&')))
          .join('/')}$`,
      ),
    }));
  }

  /** Throws when `answer` to `method path` is not what the document says. */
  check(method: string, url: string, answer: Answer): void {
    const path = new URL(url, 'http://x').pathname;
    const at = `${method} ${path} → ${answer.status}`;
    const matches = this.templates.filter((t) => t.pattern.test(path));
    // The most specific template: fewest parameters (a literal segment beats {param}).
    const found = matches.sort((a, b) => (a.template.match(/\{/g)?.length ?? 0) - (b.template.match(/\{/g)?.length ?? 0))[0];
    const operation = found ? (this.doc.paths[found.template]![method.toLowerCase()] ?? (method === 'HEAD' ? this.doc.paths[found.template]!.get : undefined)) : undefined;
    if (!found || !operation) {
      const expected = found ? 405 : 404;
      if (answer.status !== expected) throw new Error(`${at}: ${found ? 'a method the path does not serve' : 'a path the document does not list'} must answer ${expected}`);
      if (expected === 405 && !answer.headers.get('allow')) throw new Error(`${at}: 405 without Allow`);
      this.validate(at, 'problem', { $ref: '#/components/schemas/Problem' }, answer.body);
      return;
    }
    const response = operation.responses[String(answer.status)] ?? operation.responses.default;
    if (!response) throw new Error(`${at}: status not documented for ${method} ${found.template} (documented: ${Object.keys(operation.responses).join(', ')})`);
    this.seen.add(`${method} ${found.template} ${answer.status}`);
    for (const header of Object.keys(response.headers ?? {})) {
      if (answer.headers.get(header) === null) throw new Error(`${at}: documented header ${header} missing`);
    }
    if (!response.content) return;
    const type = (answer.headers.get('content-type') ?? '').split(';')[0]!.trim();
    const media = response.content[type];
    if (!media) throw new Error(`${at}: content type ${type || '(none)'} not documented (documented: ${Object.keys(response.content).join(', ')})`);
    if (type === 'application/json') this.validate(at, `${method} ${found.template} ${answer.status}`, media.schema, answer.body);
  }

  private validate(at: string, key: string, schema: unknown, body: unknown): void {
    let validate = this.compiled.get(key);
    if (!validate) {
      // The component schemas ride along, so that '#/components/schemas/...' resolves inside the compiled schema.
      validate = this.ajv.compile({ ...(schema as object), components: this.doc.components });
      this.compiled.set(key, validate);
    }
    if (!validate(body)) throw new Error(`${at}: the body does not match the document: ${this.ajv.errorsText(validate.errors)}; body ${JSON.stringify(body).slice(0, 400)}`);
  }
}

/**
 * OpenAPI 3.0.3 gives `nullable` meaning only beside a `type` (a schema without one already allows null); zod's
 * `unknown` is written as `{nullable: true}`, which ajv refuses to compile. Dropping it there changes no verdict.
 */
function withoutUntypedNullable<T>(value: T): T {
  if (Array.isArray(value)) return value.map(withoutUntypedNullable) as T;
  if (!value || typeof value !== 'object') return value;
  const o = value as Record<string, unknown>;
  const out = Object.fromEntries(
    Object.entries(o)
      .filter(([k]) => !(k === 'nullable' && o.type === undefined))
      .map(([k, v]) => [k, withoutUntypedNullable(v)]),
  );
  return out as T;
}
