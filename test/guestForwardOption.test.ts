import assert from 'node:assert/strict';
import { test } from 'node:test';
import { guestForwardsOf, parseGuestForward } from '../src/embedded/guestForwardOption';

/** `npm start -- --real-guests --guest-forward ADDRESS:PORT=COMMAND`: what the operator writes, and what is refused. */
test('a guest forward is an address of the guest network, a port and the host command each connection runs', () => {
  assert.deepEqual(parseGuestForward('10.0.2.100:33073=socat - TCP:netbird.example.org:33073'), { address: '10.0.2.100', port: 33073, command: 'socat - TCP:netbird.example.org:33073' });
  // The command is everything after the first =, as written (a command may hold = itself).
  assert.deepEqual(parseGuestForward('10.0.2.101:8080=env A=b socat - TCP:127.0.0.1:8080'), { address: '10.0.2.101', port: 8080, command: 'env A=b socat - TCP:127.0.0.1:8080' });
});

test('a guest forward outside the guest network, onto QEMU’s own addresses or without a command is refused, naming the option and its form', () => {
  const refused: Array<[string, RegExp]> = [
    ['10.0.2.100:33073', /no =COMMAND/],
    ['192.168.1.5:33073=socat - TCP:x:1', /10\.0\.2\.0\/24/],
    ['netbird.example.org:443=socat - TCP:x:1', /10\.0\.2\.0\/24/],
    ['10.0.2.2:80=true', /not free in the guest network/],
    ['10.0.2.15:80=true', /not free in the guest network/],
    ['10.0.2.300:80=true', /not free in the guest network/],
    ['10.0.2.100:0=true', /port 0 is not 1-65535/],
    ['10.0.2.100:70000=true', /port 70000 is not 1-65535/],
    ['10.0.2.100:80=  ', /COMMAND is empty/],
  ];
  for (const [text, why] of refused) {
    const parsed = parseGuestForward(text);
    assert.ok('error' in parsed, `${text} is refused`);
    assert.match(parsed.error, why, text);
    assert.match(parsed.error, /^--guest-forward .*ADDRESS:PORT=COMMAND/, `${text}: names the option and its form`);
  }
});

test('--guest-forward needs --real-guests, and one address and port is forwarded once', () => {
  assert.deepEqual(guestForwardsOf({ realGuests: false, forwards: [] }), []);
  assert.deepEqual(guestForwardsOf({ realGuests: true, forwards: [] }), []);
  const misuse = guestForwardsOf({ realGuests: false, forwards: ['10.0.2.100:33073=true'] });
  assert.ok('error' in misuse && /needs --real-guests/.test(misuse.error));
  const twice = guestForwardsOf({ realGuests: true, forwards: ['10.0.2.100:33073=true', '10.0.2.100:33073=false'] });
  assert.ok('error' in twice && /10\.0\.2\.100:33073 is given twice/.test(twice.error));
  assert.deepEqual(guestForwardsOf({ realGuests: true, forwards: ['10.0.2.100:33073=a', '10.0.2.101:8080=b'] }), [
    { address: '10.0.2.100', port: 33073, command: 'a' },
    { address: '10.0.2.101', port: 8080, command: 'b' },
  ]);
});
