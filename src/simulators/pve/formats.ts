import { isIPv4, isIPv6 } from 'node:net';
import { parsePropertyString, PropertyStringSyntaxError, type PropertyFormat } from './propertyString';
import { checkObject, type ParamErrors } from './schema';

/**
 * The `format` validators of pve-common (`JSONSchema.pm` register_format), pve-storage and qemu-server that the
 * simulator can check. Texts are PVE's. Property-string formats given inline in the API schema are checked
 * against their sub-keys; the named property-string formats whose sub-keys the schema does not spell out
 * (`pve-qm-ipconfig`, `pve-qm-cicustom`, `pve-qm-smbios1`, `pve-qm-boot`) are defined here as PVE's code does.
 * Formats not listed here are accepted unchecked (PVE has ~120; the rest concern endpoints not simulated).
 */
export class FormatError extends Error {
  constructor(
    message: string,
    readonly errors?: ParamErrors,
  ) {
    super(message);
  }
}

type Validator = (value: string) => void;

const fail = (message: string): never => {
  throw new FormatError(message);
};

const CIDR = (value: string, family: 4 | 6): boolean => {
  const m = /^(.+)\/(\d+)$/.exec(value);
  if (!m) return false;
  const bits = Number(m[2]);
  return family === 4 ? isIPv4(m[1]!) && bits > 7 && bits <= 32 : isIPv6(m[1]!) && bits > 7 && bits <= 128;
};
const DNS_NAME_RE = /^(([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)\.)*([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)$/;
const VOLUME_ID_RE = /^([a-z][a-z0-9\-_.]*[a-z0-9]):(.+)$/is;
const STORAGE_CONTENT = ['images', 'rootdir', 'vztmpl', 'iso', 'backup', 'snippets', 'import'];

const verifyVolumeId: Validator = (v) => {
  if (!VOLUME_ID_RE.test(v)) fail(`unable to parse volume ID '${v}'`);
};

const validators: Record<string, Validator> = {
  string: () => undefined,
  urlencoded: (v) => {
    if (!/^[-%a-zA-Z0-9_.!~*'()]*$/.test(v)) fail(`invalid urlencoded string: ${v}`);
  },
  'pve-configid': (v) => {
    if (!/^[a-z][a-z0-9_-]+$/i.test(v)) fail(`invalid configuration ID '${v}'`);
  },
  'pve-storage-id': (v) => {
    if (!/^[a-z][a-z0-9\-_.]*[a-z0-9]$/i.test(v)) fail(`storage ID '${v}' contains illegal characters`);
  },
  'pve-bridge-id': (v) => {
    if (!/^[-_.\w\d]+$/.test(v)) fail(`invalid bridge ID '${v}'`);
  },
  'pve-vmid': (v) => {
    if (!/^[1-9][0-9]{2,8}$/.test(v)) fail('value does not look like a valid VM ID');
  },
  'pve-node': (v) => {
    if (!/^([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?)$/.test(v)) fail('value does not look like a valid node name');
  },
  'pve-poolid': (v) => {
    if (!/^[A-Za-z][A-Za-z0-9_\-.]*(\/[A-Za-z][A-Za-z0-9_\-.]*){0,2}$/.test(v)) {
      fail(`pool name '${v}' contains invalid characters`);
    }
  },
  'mac-addr': (v) => {
    if (!/^[a-f0-9][02468ace](?::[a-f0-9]{2}){5}$/i.test(v)) fail('value does not look like a valid unicast MAC address');
  },
  ipv4: (v) => {
    if (!isIPv4(v)) fail('value does not look like a valid IPv4 address');
  },
  ipv6: (v) => {
    if (!isIPv6(v)) fail('value does not look like a valid IPv6 address');
  },
  ip: (v) => {
    if (!isIPv4(v) && !isIPv6(v)) fail('value does not look like a valid IP address');
  },
  CIDRv4: (v) => {
    if (!CIDR(v, 4)) fail('value does not look like a valid IPv4 CIDR network');
  },
  CIDRv6: (v) => {
    if (!CIDR(v, 6)) fail('value does not look like a valid IPv6 CIDR network');
  },
  CIDR: (v) => {
    if (!CIDR(v, 4) && !CIDR(v, 6)) fail('value does not look like a valid CIDR network');
  },
  'pve-ipv4-config': (v) => {
    if (!/^(?:dhcp|manual)$/.test(v) && !CIDR(v, 4)) fail('value does not look like a valid ipv4 network configuration');
  },
  'pve-ipv6-config': (v) => {
    if (!/^(?:auto|dhcp|manual)$/.test(v) && !CIDR(v, 6)) fail('value does not look like a valid ipv6 network configuration');
  },
  'dns-name': (v) => {
    if (!DNS_NAME_RE.test(v)) fail('value does not look like a valid DNS name');
  },
  address: (v) => {
    if (!isIPv4(v) && !isIPv6(v) && !DNS_NAME_RE.test(v)) fail(`value does not look like a valid address: ${v}`);
  },
  'disk-size': (v) => {
    if (!/^(\d+(\.\d+)?)([KMGT])?$/.test(v)) fail(`value does not look like a valid disk size: ${v}`);
  },
  'pve-tag': (v) => {
    if (!/^[a-z0-9_][a-z0-9_\-+.]*$/i.test(v)) fail('invalid characters in tag');
  },
  'pve-volume-id': verifyVolumeId,
  'pve-volume-id-or-qm-path': (v) => {
    if (v === 'none' || v === 'cdrom' || v.startsWith('/')) return;
    verifyVolumeId(v);
  },
  'pve-volume-id-or-absolute-path': (v) => {
    if (v.startsWith('/')) return;
    verifyVolumeId(v);
  },
  'pve-storage-content': (v) => {
    if (!STORAGE_CONTENT.includes(v)) fail(`invalid content type '${v}'`);
  },
  'pve-task-status-type': (v) => {
    if (!/^(ok|error|warning|unknown)$/i.test(v)) fail(`invalid status '${v}'`);
  },
  'pve-startup-order': (v) => {
    const ok = v.split(',').every((p) => /^\s*$/.test(p) || /^(order=)?\d+$/.test(p) || /^(up|down)=\d+$/.test(p));
    if (!v || !ok) fail('unable to parse startup options');
  },
};

const BASE64_VALUE: Record<string, unknown> = { type: 'string', pattern: '[A-Za-z0-9+/]+={0,2}', optional: 1 };
const VOLUME: Record<string, unknown> = { type: 'string', format: 'pve-volume-id', optional: 1 };

/** Named property-string formats defined in qemu-server code (the API schema only gives their `typetext`). */
const namedPropertyFormats: Record<string, { format: PropertyFormat; check?: (parsed: Record<string, string>) => void }> = {
  'pve-qm-ipconfig': {
    format: {
      ip: { type: 'string', format: 'pve-ipv4-config', optional: 1 },
      gw: { type: 'string', format: 'ipv4', optional: 1 },
      ip6: { type: 'string', format: 'pve-ipv6-config', optional: 1 },
      gw6: { type: 'string', format: 'ipv6', optional: 1 },
    },
    // qemu-server Cloudinit/QemuServer `verify_ipconfig`: gateways need a static address of their family.
    check: (p) => {
      if (p.gw !== undefined && (p.ip === undefined || !CIDR(p.ip, 4))) fail('gateway specified without specifying an IP address');
      if (p.gw6 !== undefined && (p.ip6 === undefined || !CIDR(p.ip6, 6))) fail('gateway specified without specifying an IP address');
    },
  },
  'pve-qm-cicustom': {
    format: { meta: VOLUME, network: VOLUME, user: VOLUME, vendor: VOLUME } as PropertyFormat,
  },
  'pve-qm-smbios1': {
    format: {
      uuid: { type: 'string', pattern: '[a-fA-F0-9]{8}(?:-[a-fA-F0-9]{4}){3}-[a-fA-F0-9]{12}', optional: 1 },
      version: BASE64_VALUE,
      serial: BASE64_VALUE,
      manufacturer: BASE64_VALUE,
      product: BASE64_VALUE,
      sku: BASE64_VALUE,
      family: BASE64_VALUE,
      base64: { type: 'boolean', optional: 1 },
    } as PropertyFormat,
  },
  'pve-qm-boot': {
    format: {
      legacy: { type: 'string', pattern: '[acdn]{1,4}', default_key: 1, optional: 1 },
      order: {
        type: 'string',
        optional: 1,
        pattern: '(?:(?:ide|sata|scsi|virtio|net|efidisk|tpmstate|usb|hostpci)\\d+)(?:;(?:(?:ide|sata|scsi|virtio|net|efidisk|tpmstate|usb|hostpci)\\d+))*',
      },
    },
  },
};

/** PVE::Tools::split_list. */
export function splitList(text: string): string[] {
  return text.split(/[,;\0\s]+/).filter((s) => s.length > 0);
}

function checkPropertyString(format: PropertyFormat, value: string, path: string): Record<string, string> {
  let parsed: Record<string, string>;
  try {
    parsed = parsePropertyString(format, value);
  } catch (err) {
    if (err instanceof PropertyStringSyntaxError) throw new FormatError(err.message);
    throw err;
  }
  const errors: ParamErrors = {};
  checkObject(path, format, parsed, false, errors);
  if (Object.keys(errors).length) throw new FormatError('format error', errors);
  return parsed;
}

/** `check_format`: an inline property-string format, or a registered name with optional `-list`/`-opt` suffix. */
export function checkFormat(format: string | PropertyFormat, value: string, path: string): void {
  if (typeof format !== 'string') {
    checkPropertyString(format, value, path);
    return;
  }
  const named = namedPropertyFormats[format];
  if (named) {
    const parsed = checkPropertyString(named.format, value, path);
    named.check?.(parsed);
    return;
  }
  const m = /^(.*?)(?:-(list|opt))?$/.exec(format)!;
  const validator = validators[m[1]!];
  if (!validator) return;
  if (m[2] === 'list') splitList(value).forEach(validator);
  else if (m[2] === 'opt') {
    if (value) validator(value);
  } else validator(value);
}

/** Parses a value of a named property format (after validation), e.g. `cicustom` or `ipconfig0`. */
export function parseNamedPropertyString(name: keyof typeof namedPropertyFormats, value: string): Record<string, string> {
  return parsePropertyString(namedPropertyFormats[name]!.format, value);
}
