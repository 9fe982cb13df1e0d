/**
 * IPv4 addresses as 32-bit numbers, and the address lists operators write (`10.0.0.5`, `10.0.0.10-10.0.0.20`,
 * `10.0.1.0/28`). Pure, without Node APIs: the ipPool workflow uses it too.
 */
export type Ipv4Range = readonly [first: number, last: number];

const OCTETS = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function parseIpv4(text: string): number | undefined {
  const m = OCTETS.exec(text.trim());
  if (!m) return undefined;
  const octets = m.slice(1).map(Number);
  if (octets.some((o) => o > 255)) return undefined;
  return octets.reduce((n, o) => n * 256 + o, 0);
}

export function formatIpv4(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}

export interface Ipv4Subnet {
  network: number;
  prefix: number;
}

/** `10.20.30.0/24` (host bits must be zero: a typo there usually means the wrong subnet). */
export function parseSubnet(text: string): Ipv4Subnet | { error: string } {
  const [addr, bits, ...rest] = text.trim().split('/');
  const network = parseIpv4(addr ?? '');
  const prefix = Number(bits);
  if (network === undefined || rest.length || !/^\d{1,2}$/.test(bits ?? '') || prefix < 8 || prefix > 30) {
    return { error: 'must be an IPv4 subnet such as 10.20.30.0/24 (prefix 8-30)' };
  }
  if (network % 2 ** (32 - prefix) !== 0) return { error: `host bits are set: did you mean ${formatIpv4(network - (network % 2 ** (32 - prefix)))}/${prefix}?` };
  return { network, prefix };
}

/** The subnet's first and last address (network and broadcast). */
export function subnetRange({ network, prefix }: Ipv4Subnet): Ipv4Range {
  return [network, network + 2 ** (32 - prefix) - 1];
}

/** A comma-separated list of addresses, `a-b` ranges and subnets. */
export function parseRangeList(text: string): Ipv4Range[] | { error: string } {
  const out: Ipv4Range[] = [];
  for (const item of text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    if (item.includes('/')) {
      const subnet = parseSubnet(item);
      if ('error' in subnet) return { error: `${item}: ${subnet.error}` };
      out.push(subnetRange(subnet));
      continue;
    }
    const [a, b, ...rest] = item.split('-');
    const first = parseIpv4(a ?? '');
    const last = b === undefined ? first : parseIpv4(b);
    if (first === undefined || last === undefined || rest.length || last < first) {
      return { error: `${item}: not an IPv4 address, a range a.b.c.d-e.f.g.h or a subnet` };
    }
    out.push([first, last]);
  }
  return out;
}

export const inRanges = (n: number, ranges: readonly Ipv4Range[]) => ranges.some(([a, b]) => n >= a && n <= b);
