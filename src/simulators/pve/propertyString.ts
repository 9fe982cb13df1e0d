import type { ParamSchema } from './schema';

/**
 * PVE property strings (`virtio=BC:24:11:00:00:01,bridge=vmbr0`): comma-separated `key=value` parts, one part
 * may omit its key when the format has a `default_key`, aliases map to their target key and `keyAlias` stores the
 * alias name itself (`virtio=<mac>` → `model=virtio`, `macaddr=<mac>`). Syntax errors read like
 * `parse_property_string` in pve-common; value checks are done by the caller against the same sub-schemas.
 */
export class PropertyStringSyntaxError extends Error {}

export type PropertyFormat = Record<string, ParamSchema>;

const TRUE_RE = /^(1|on|yes|true)$/i;
const FALSE_RE = /^(0|off|no|false)$/i;

export function parsePropertyString(format: PropertyFormat, data: string): Record<string, string> {
  const res: Record<string, string> = {};
  let defaultKey: string | undefined;
  for (const part of data.split(',')) {
    if (/^\s*$/.test(part)) continue;
    const kv = /^([^=]+)=(.+)$/s.exec(part);
    if (kv) {
      let k = kv[1]!;
      let v = kv[2]!;
      if (res[k] !== undefined) throw new PropertyStringSyntaxError(`duplicate key in comma-separated list property: ${k}`);
      let schema = format[k];
      if (schema?.alias) {
        if (schema.keyAlias) {
          if (res[schema.keyAlias] !== undefined) {
            throw new PropertyStringSyntaxError(`key alias '${schema.keyAlias}' is already defined`);
          }
          res[schema.keyAlias] = k;
        }
        k = schema.alias;
        schema = format[k];
      }
      if (!schema) throw new PropertyStringSyntaxError(`invalid key in comma-separated list property: ${k}`);
      if (schema.type === 'boolean') v = TRUE_RE.test(v) ? '1' : FALSE_RE.test(v) ? '0' : v;
      res[k] = v;
    } else if (!part.includes('=')) {
      if (defaultKey) throw new PropertyStringSyntaxError(`duplicate key in comma-separated list property: ${defaultKey}`);
      defaultKey = Object.keys(format).find((key) => format[key]?.default_key);
      if (!defaultKey) {
        throw new PropertyStringSyntaxError('value without key, but schema does not define a default key');
      }
      if (res[defaultKey] !== undefined) {
        throw new PropertyStringSyntaxError(`duplicate key in comma-separated list property: ${defaultKey}`);
      }
      res[defaultKey] = part;
    } else {
      throw new PropertyStringSyntaxError('missing key in comma-separated list property');
    }
  }
  return res;
}

/** Prints parsed values back, the default key first without its name (as `print_property_string` does). */
export function printPropertyString(format: PropertyFormat, values: Record<string, string>): string {
  const defaultKey = Object.keys(format).find((key) => format[key]?.default_key);
  const parts: string[] = [];
  if (defaultKey && values[defaultKey] !== undefined) parts.push(values[defaultKey]);
  for (const [k, v] of Object.entries(values)) {
    if (k === defaultKey) continue;
    parts.push(`${k}=${v}`);
  }
  return parts.join(',');
}

/**
 * A lenient key=value split for values the simulator wrote itself or has already validated (disk and NIC
 * strings in stored configs): the first keyless part is returned under `defaultKey`.
 */
export function splitPropertyString(data: string, defaultKey: string): Record<string, string> {
  const res: Record<string, string> = {};
  for (const part of data.split(',')) {
    if (!part) continue;
    const i = part.indexOf('=');
    if (i < 0) res[defaultKey] ??= part;
    else res[part.slice(0, i)] = part.slice(i + 1);
  }
  return res;
}

export function joinPropertyString(values: Record<string, string>, defaultKey: string): string {
  const head = values[defaultKey];
  const rest = Object.entries(values)
    .filter(([k]) => k !== defaultKey)
    .map(([k, v]) => `${k}=${v}`);
  return [...(head !== undefined ? [head] : []), ...rest].join(',');
}
