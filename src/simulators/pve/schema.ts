import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkFormat, FormatError } from './formats';

/**
 * PVE's parameter validator (pve-common `PVE/JSONSchema.pm` `check_prop`/`check_object`), driven by the official
 * API schema's facts (pve-api-facts.json beside this file, derived by scripts/derive-pve-schema-facts.ts from
 * pve-docs' API viewer data; its `provenance` names the version). It is general on purpose: every route the
 * simulator serves is validated the same way, in the same order and with the same texts as the real server, so a
 * request the real API rejects is rejected here too.
 */

/** One parameter (or property-string sub-key) as the schema describes it. */
export interface ParamSchema {
  type?: string;
  format?: string | Record<string, ParamSchema>;
  optional?: 0 | 1 | boolean;
  minimum?: number | string;
  maximum?: number | string;
  minLength?: number;
  maxLength?: number;
  enum?: string[];
  pattern?: string;
  default?: unknown;
  default_key?: 0 | 1 | boolean;
  alias?: string;
  keyAlias?: string;
  requires?: string | ParamSchema;
  items?: ParamSchema;
  /** The highest index of an indexed key (`scsi[n]`: 30), where the schema states it. */
  indexMax?: number;
}

export interface MethodParameters {
  additionalProperties?: 0 | 1 | boolean;
  properties?: Record<string, ParamSchema>;
}

export interface MethodSchema {
  parameters?: MethodParameters;
  permissions?: unknown;
  returns?: unknown;
  protected?: 0 | 1;
  proxyto?: string;
  allowtoken?: 0 | 1;
}

type SchemaDocument = Record<string, Record<string, MethodSchema>>;

/** The derived file: where its facts come from, and the facts per path and method. */
interface FactsFile {
  provenance: { source: string; derivedBy: string; inputSha256: string };
  paths: SchemaDocument;
}

export const PVE_API_FACTS_FILE = join(__dirname, 'pve-api-facts.json');

/**
 * A parameter value as it arrived: strings from forms and query strings (arrays for repeated keys), and whatever
 * JSON carried for JSON bodies. Numbers are already turned into their decimal text, as Perl would see them.
 */
export type RawParam = string | boolean | RawParam[] | { [key: string]: unknown };

export type ParamErrors = Record<string, string>;

let loaded: PveApiSchema | undefined;

export class PveApiSchema {
  private constructor(
    private readonly doc: SchemaDocument,
    /** Which Proxmox VE schema the facts were derived from. */
    readonly source: string,
  ) {}

  /** The schema's facts kept in the repository, parsed once per process. */
  static fromFacts(): PveApiSchema {
    if (!loaded) {
      const facts = JSON.parse(readFileSync(PVE_API_FACTS_FILE, 'utf8')) as FactsFile;
      loaded = new PveApiSchema(facts.paths, facts.provenance.source);
    }
    return loaded;
  }

  method(pathTemplate: string, method: string): MethodSchema | undefined {
    return this.doc[pathTemplate]?.[method];
  }
}

/**
 * Indexed keys appear once as `net[n]`; the real range is the schema's `indexMax` where it states one, else the
 * limit in PVE's code, written out here.
 */
const INDEX_LIMITS: Record<string, number> = {
  net: 31,
  ipconfig: 31,
  scsi: 30,
  virtio: 15,
  sata: 5,
  ide: 3,
  serial: 3,
  usb: 14,
  unused: 255,
  hostpci: 15,
  numa: 7,
  parallel: 2,
  virtiofs: 9,
  mp: 255,
  dev: 255,
};

/** The schema of `key` among `properties`, resolving indexed keys (`net3` → `net[n]`) within their range. */
export function resolveProperty(properties: Record<string, ParamSchema>, key: string): ParamSchema | undefined {
  const direct = properties[key];
  if (direct) return direct;
  const m = /^([a-z]+)(\d+)$/.exec(key);
  if (!m || (m[2]!.length > 1 && m[2]!.startsWith('0'))) return undefined;
  const template = properties[`${m[1]}[n]`];
  if (!template) return undefined;
  const limit = template.indexMax ?? INDEX_LIMITS[m[1]!];
  if (limit !== undefined && Number(m[2]) > limit) return undefined;
  return template;
}

function isOptional(schema: ParamSchema): boolean {
  return schema.optional === 1 || schema.optional === true || schema.alias !== undefined;
}

function addError(errors: ParamErrors, path: string, msg: string): void {
  const key = path || '_root';
  // PVE joins with a single-quoted '\n', i.e. a literal backslash-n.
  errors[key] = errors[key] ? `${errors[key]}\\n${msg}` : msg;
}

const IS_NUMBER = /^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$/;
const IS_INTEGER = /^[+-]?\d+$/;

function perlRefName(value: RawParam): string | undefined {
  if (typeof value === 'boolean') return 'JSON::PP::Boolean';
  if (Array.isArray(value)) return 'ARRAY';
  if (typeof value === 'object') return 'HASH';
  return undefined;
}

function checkType(path: string, type: string | undefined, value: RawParam, errors: ParamErrors): boolean {
  if (!type || type === 'any') return true;
  const ref = perlRefName(value);
  if (type === 'array' || type === 'object') {
    const ok = type === 'array' ? Array.isArray(value) : ref === 'HASH';
    if (!ok) addError(errors, path, `type check ('${type}') failed`);
    return ok;
  }
  if (ref) {
    if (type === 'boolean' && typeof value === 'boolean') return true;
    addError(errors, path, `type check ('${type}') failed - got ${ref}`);
    return false;
  }
  const text = value as string;
  const ok = type === 'boolean' ? text === '1' || text === '0' : type === 'integer' ? IS_INTEGER.test(text) : type === 'number' ? IS_NUMBER.test(text) : true;
  if (!ok) addError(errors, path, `type check ('${type}') failed - got '${text}'`);
  return ok;
}

/** `check_prop`: one value against its schema, errors keyed by `path`. */
export function checkProp(value: RawParam | undefined, schema: ParamSchema, path: string, errors: ParamErrors): void {
  if (value === undefined) {
    if (!isOptional(schema)) addError(errors, path, 'property is missing and it is not optional');
    return;
  }
  if (!checkType(path, schema.type, value, errors)) return;
  if (Array.isArray(value)) {
    if (schema.items) value.forEach((el, i) => checkProp(el, schema.items!, `${path}[${i}]`, errors));
    return;
  }
  if (typeof value === 'object' || typeof value === 'boolean') return;

  if (schema.format !== undefined) {
    try {
      checkFormat(schema.format, value, path);
    } catch (err) {
      addError(errors, path, `invalid format - ${formatErrorText(err)}`);
      return;
    }
  }
  // Perl's stringified qr// groups (`(?^:...)`, e.g. `userid`'s pattern) are plain non-capturing groups in JS.
  if (schema.pattern !== undefined && !new RegExp(`^(?:${schema.pattern.replaceAll('(?^:', '(?:')})$`).test(value)) {
    addError(errors, path, 'value does not match the regex pattern');
    return;
  }
  if (schema.maxLength !== undefined && [...value].length > schema.maxLength) {
    addError(errors, path, `value may only be ${schema.maxLength} characters long`);
    return;
  }
  if (schema.minLength !== undefined && [...value].length < schema.minLength) {
    addError(errors, path, `value must be at least ${schema.minLength} characters long`);
    return;
  }
  if (IS_NUMBER.test(value)) {
    if (schema.maximum !== undefined && Number(value) > Number(schema.maximum)) {
      addError(errors, path, `value must have a maximum value of ${schema.maximum}`);
      return;
    }
    if (schema.minimum !== undefined && Number(value) < Number(schema.minimum)) {
      addError(errors, path, `value must have a minimum value of ${schema.minimum}`);
      return;
    }
  }
  if (schema.enum && !schema.enum.includes(value)) {
    addError(errors, path, `value '${value}' does not have a value in the enumeration '${schema.enum.join(', ')}'`);
  }
}

/** How a format failure reads after `invalid format - ` (PVE::Exception stringified, with its sub-errors). */
function formatErrorText(err: unknown): string {
  if (err instanceof FormatError) {
    const lines = Object.entries(err.errors ?? {}).map(([k, v]) => `${k}: ${v}\n`);
    return `${err.message}\n${lines.join('')}`;
  }
  return `${err instanceof Error ? err.message : String(err)}\n`;
}

/** `check_object`: every schema key (missing/invalid), then every given key (unknown, `requires`). */
export function checkObject(path: string, properties: Record<string, ParamSchema>, value: Record<string, RawParam>, allowAdditional: boolean, errors: ParamErrors): void {
  const join = (k: string) => (path ? `${path}.${k}` : k);
  for (const [k, schema] of Object.entries(properties)) {
    if (k.endsWith('[n]')) continue;
    checkProp(value[k], schema, join(k), errors);
  }
  for (const [k, v] of Object.entries(value)) {
    const schema = properties[k] ? undefined : resolveProperty(properties, k);
    if (schema) checkProp(v, schema, join(k), errors);
    const known = properties[k] ?? schema;
    if (known) {
      const requires = known.requires;
      if (typeof requires === 'string' && value[requires] === undefined) {
        addError(errors, join(requires), `missing property - '${join(k)}' requires this property`);
      }
      continue;
    }
    if (!allowAdditional) {
      addError(errors, join(k), 'property is not defined in schema and the schema does not allow additional properties');
    }
  }
}

/** Validates a request's merged parameters against its method schema; returns the per-parameter errors. */
export function validateParameters(method: MethodSchema, params: Record<string, RawParam>): ParamErrors | undefined {
  const errors: ParamErrors = {};
  const p = method.parameters ?? {};
  const allowAdditional = !(p.additionalProperties === 0 || p.additionalProperties === false);
  checkObject('', p.properties ?? {}, params, allowAdditional, errors);
  return Object.keys(errors).length ? errors : undefined;
}
