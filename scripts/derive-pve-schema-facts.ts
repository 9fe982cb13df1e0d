import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';

/**
 * Derives src/simulators/pve/pve-api-facts.json from Proxmox VE's API schema (the API viewer's data, pve-docs
 * `api-viewer/apidata.js`, flattened to `{ "<path>": { "<METHOD>": {...} } }`). What is kept are the schema's facts:
 * paths, methods, parameters with their types, formats, enums, patterns, bounds and optionality, permissions, and
 * the types of what each call returns. Every sentence is dropped (descriptions, type texts, titles, prose defaults):
 * the simulator validates with facts and the project holds no one else's prose.
 *
 *   npx tsx scripts/derive-pve-schema-facts.ts <pve-api-schema.json> '<source and version>'
 *   e.g. … pve-api-schema.json 'proxmox/pve-docs 9.1.3 (2026-04-30), api-viewer/apidata.js'
 */

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

const OUTPUT = resolve(__dirname, '..', 'src', 'simulators', 'pve', 'pve-api-facts.json');

/** Keys whose value is prose (or only a hint for rendering the API viewer): never copied. */
const PROSE = new Set(['description', 'verbose_description', 'format_description', 'typetext', 'title', 'renderer', 'links']);

/**
 * Keys whose value is a map of names to schemas (the names are data, not keywords): parameters and returned
 * objects, and property-string formats given as objects of sub-keys.
 */
const SCHEMA_MAPS = new Set(['properties', 'format']);

function isObject(value: Json | undefined): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A `default` is kept when it is a value the parameter could take; some are sentences ("current connected node",
 * "clone limit from datacenter or storage config") and go with the rest of the prose.
 */
function isValueDefault(schema: JsonObject, value: Json): boolean {
  if (typeof value !== 'string') return true;
  const type = schema.type;
  if (type === 'integer' || type === 'number' || type === 'boolean') return /^-?\d+(\.\d+)?$/.test(value);
  if (Array.isArray(schema.enum)) return schema.enum.includes(value);
  return !/\s/.test(value);
}

/** One parameter or return schema, without its prose. Property-string formats (objects of sub-keys) recurse. */
function schemaFacts(schema: JsonObject): JsonObject {
  const out: JsonObject = {};
  const description = typeof schema.description === 'string' ? schema.description : '';
  for (const [key, value] of Object.entries(schema)) {
    if (PROSE.has(key)) continue;
    if (key === 'default' && !isValueDefault(schema, value)) continue;
    out[key] = SCHEMA_MAPS.has(key) && isObject(value) ? mapFacts(value) : nestedFacts(value);
  }
  // An indexed key (`scsi[n]`) states its range only in its sentence: "(n is 0 to 30)". The number is a fact.
  const range = /\(n is 0 to (\d+)\)/.exec(description);
  if (range) out.indexMax = Number(range[1]);
  return out;
}

/** A nested schema (`items`, `additionalProperties`, `oneOf`'s members, …) loses its prose too; plain values stay. */
function nestedFacts(value: Json): Json {
  if (Array.isArray(value)) return value.map(nestedFacts);
  return isObject(value) ? schemaFacts(value) : value;
}

function mapFacts(map: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const [name, schema] of Object.entries(map)) out[name] = isObject(schema) ? schemaFacts(schema) : schema;
  return out;
}

/** The method's facts: parameters, returns and permissions as schemas, the flags as they are. */
function methodFacts(method: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(method)) {
    if (PROSE.has(key)) continue;
    out[key] = isObject(value) ? schemaFacts(value) : value;
  }
  return out;
}

function main(): void {
  const [input, source] = process.argv.slice(2);
  if (!input || !source) {
    console.error("usage: npx tsx scripts/derive-pve-schema-facts.ts <pve-api-schema.json> '<source and version>'");
    process.exit(2);
  }
  const raw = readFileSync(input);
  const doc = JSON.parse(raw.toString('utf8')) as JsonObject;
  const paths = Object.keys(doc).sort();
  const provenance = {
    source,
    derivedBy: 'scripts/derive-pve-schema-facts.ts',
    inputSha256: createHash('sha256').update(raw).digest('hex'),
    kept: 'paths, methods, parameters (type, format, optional, enum, pattern, minimum/maximum, lengths, aliases, value defaults), permissions, returns; prose dropped',
  };
  // One path a line: a re-derivation from a newer schema diffs path by path.
  const lines = paths.map((path) => {
    const methods = doc[path];
    const facts: JsonObject = {};
    if (isObject(methods)) for (const [name, method] of Object.entries(methods)) facts[name] = isObject(method) ? methodFacts(method) : method;
    return `    ${JSON.stringify(path)}: ${JSON.stringify(facts)}`;
  });
  const text = `{\n  "provenance": ${JSON.stringify(provenance)},\n  "paths": {\n${lines.join(',\n')}\n  }\n}\n`;
  JSON.parse(text);
  writeFileSync(OUTPUT, text);
  console.log(`${OUTPUT}: ${paths.length} paths from ${input} (${source})`);
}

main();
