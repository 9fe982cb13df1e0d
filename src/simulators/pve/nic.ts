import { randomMac } from './cluster';
import { splitPropertyString } from './propertyString';

/**
 * A `netN` value as qemu-server stores it (`parse_net` + `print_net`): a NIC given without a MAC gets a random one
 * under the datacenter's prefix (BC:24:11), the model keeps its place in front as `<model>=<MAC>`, and the other
 * settings follow sorted by key, as `print_property_string` writes them. Called for create and config alike, so
 * setting `net0` without a MAC on an existing VM gives it a new one, as Proxmox does.
 */
const MAC_RE = /^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$/;

export function printNet(value: string): string {
  const parts = splitPropertyString(value, 'model');
  let model = parts.model;
  let mac = parts.macaddr;
  const rest: Record<string, string> = {};
  for (const [k, v] of Object.entries(parts)) {
    if (k === 'model' || k === 'macaddr') continue;
    // `virtio=<MAC>`: the model's own name is the key, the MAC its value (the format's keyAlias).
    if (model === undefined && MAC_RE.test(v)) {
      model = k;
      mac = v;
    } else rest[k] = v;
  }
  const head = `${model ?? 'virtio'}=${(mac ?? randomMac()).toUpperCase()}`;
  return [
    head,
    ...Object.keys(rest)
      .sort()
      .map((k) => `${k}=${rest[k]}`),
  ].join(',');
}
