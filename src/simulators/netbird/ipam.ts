import { isIPv4 } from 'node:net';

/**
 * VPN addresses for peers from the account's network (NetBird's CGNAT range by default). Addresses are handed out
 * in order and never reused while a peer holds them; the network and broadcast addresses are never given.
 */
export class PeerAddressPool {
  private readonly base: number;
  private readonly size: number;
  private next = 1;
  private readonly taken = new Set<number>();

  constructor(readonly cidr: string) {
    const [address, prefixText] = cidr.split('/');
    const prefix = Number(prefixText);
    if (!address || !isIPv4(address) || !Number.isInteger(prefix) || prefix < 8 || prefix > 30) {
      throw new Error(`peerNetwork ${cidr} is not an IPv4 CIDR between /8 and /30`);
    }
    this.size = 2 ** (32 - prefix);
    this.base = toNumber(address) - (toNumber(address) % this.size);
  }

  allocate(): string {
    for (let tries = 0; tries < this.size; tries++) {
      const offset = this.next;
      this.next = this.next + 1 >= this.size - 1 ? 1 : this.next + 1;
      if (!this.taken.has(offset)) {
        this.taken.add(offset);
        return toAddress(this.base + offset);
      }
    }
    throw new Error(`peer network ${this.cidr} has no free address left`);
  }

  contains(ip: string): boolean {
    if (!isIPv4(ip)) return false;
    const offset = toNumber(ip) - this.base;
    return offset > 0 && offset < this.size - 1;
  }

  isTaken(ip: string): boolean {
    return this.taken.has(toNumber(ip) - this.base);
  }

  /** Claims a specific address (a peer's IP changed through the API). */
  claim(ip: string): void {
    this.taken.add(toNumber(ip) - this.base);
  }

  release(ip: string): void {
    this.taken.delete(toNumber(ip) - this.base);
  }
}

function toNumber(ip: string): number {
  return ip.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

function toAddress(n: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
}
