import type { GuestForward } from '../simulators/pve';

/** The `npm start` option that gives a real guest a service of the host's (or beyond), and its form. */
export const GUEST_FORWARD_OPTION = '--guest-forward';
export const GUEST_FORWARD_FORM = 'ADDRESS:PORT=COMMAND';

/**
 * `10.0.2.100:33073=socat - TCP:netbird.example.org:33073`: the guest reaches ADDRESS:PORT of its own user-mode
 * network (QEMU's 10.0.2.0/24, closed to everything else), and each connection is COMMAND's stdin and stdout on the
 * host (QEMU `guestfwd`). 10.0.2.2, .3 and .15 are QEMU's gateway, DNS and the guest itself: a forward cannot be one.
 */
export function parseGuestForward(text: string): GuestForward | { error: string } {
  const refuse = (why: string) => ({ error: `${GUEST_FORWARD_OPTION} ${JSON.stringify(text)}: ${why} (the form is ${GUEST_FORWARD_FORM}, e.g. 10.0.2.100:33073=socat - TCP:netbird.example.org:33073)` });
  const eq = text.indexOf('=');
  if (eq < 0) return refuse('no =COMMAND');
  const match = /^10\.0\.2\.(\d{1,3}):(\d{1,5})$/.exec(text.slice(0, eq).trim());
  if (!match) return refuse('ADDRESS:PORT must be an address of the guest network 10.0.2.0/24 and a port');
  const host = Number(match[1]);
  const port = Number(match[2]);
  if (host < 1 || host > 254 || [2, 3, 15].includes(host)) return refuse(`10.0.2.${host} is not free in the guest network (.2 gateway, .3 DNS, .15 the guest)`);
  if (port < 1 || port > 65535) return refuse(`port ${port} is not 1-65535`);
  const command = text.slice(eq + 1).trim();
  if (!command) return refuse('COMMAND is empty');
  return { address: `10.0.2.${host}`, port, command };
}

/** Every `--guest-forward` given, or the first refusal; two forwards of the same address and port are refused too. */
export function parseGuestForwards(texts: readonly string[]): GuestForward[] | { error: string } {
  const forwards: GuestForward[] = [];
  for (const text of texts) {
    const forward = parseGuestForward(text);
    if ('error' in forward) return forward;
    if (forwards.some((f) => f.address === forward.address && f.port === forward.port)) return { error: `${GUEST_FORWARD_OPTION}: ${forward.address}:${forward.port} is given twice` };
    forwards.push(forward);
  }
  return forwards;
}

/** `npm start`'s forwards: none without `--guest-forward`; given without `--real-guests`, a misuse (no guest to forward for). */
export function guestForwardsOf(args: { realGuests: boolean; forwards: readonly string[] }): GuestForward[] | { error: string } {
  if (args.forwards.length > 0 && !args.realGuests) return { error: `${GUEST_FORWARD_OPTION} needs --real-guests: only a real guest has a network to forward from` };
  return parseGuestForwards(args.forwards);
}
