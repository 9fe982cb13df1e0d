import { randomInt } from 'node:crypto';

// No 0/O, 1/I: people read serials aloud and type them.
const ALPHABET = '23456789ABCDEFGHJKLMNPQRSTUVWXYZ';

/** `VM-XXXXX`: the request's public id, and the key of its workflow (`vm-request-VM-XXXXX`). */
export function newSerial(): string {
  let s = '';
  for (let i = 0; i < 5; i++) s += ALPHABET[randomInt(ALPHABET.length)];
  return `VM-${s}`;
}

export const requestWorkflowId = (serial: string) => `vm-request-${serial}`;
