import { createHash, randomInt } from 'node:crypto';

// No 0/O, 1/I: people read serials aloud and type them.
const ALPHABET = '23456789ABCDEFGHJKLMNPQRSTUVWXYZ';
const LENGTH = 5;

/** `VM-XXXXX`: the request's public id, and the key of its workflow (`vm-request-VM-XXXXX`). */
export function newSerial(): string {
  let s = '';
  for (let i = 0; i < LENGTH; i++) s += ALPHABET[randomInt(ALPHABET.length)];
  return `VM-${s}`;
}

/**
 * The serial a webhook delivery gets: derived from its delivery id, so a redelivery lands on the same workflow id and
 * starts nothing new. `candidate` walks a fixed sequence for the rare delivery whose first serial is already taken
 * by another request; a redelivery walks the same sequence and meets its own request at the same step.
 */
export function serialForDelivery(deliveryId: string, candidate: number): string {
  return derivedSerial(`pveflow-delivery:${deliveryId}:${candidate}`);
}

/**
 * The serial of a submission carrying an Idempotency-Key: derived from who submits (`scope`) and the key, so a retry
 * lands on the same workflow id. `candidate` walks past serials other requests hold, like serialForDelivery.
 */
export function serialForIdempotencyKey(scope: string, key: string, candidate: number): string {
  return derivedSerial(`pveflow-idempotency:${scope}:${key}:${candidate}`);
}

function derivedSerial(seed: string): string {
  const digest = createHash('sha256').update(seed).digest();
  let s = '';
  // 32 symbols: 5 bits of the digest per character.
  for (let i = 0; i < LENGTH; i++) s += ALPHABET[digest[i]! & 31];
  return `VM-${s}`;
}

/** `CL-XXXXX`: a class of identical VMs submitted together; random, or derived from the submission's Idempotency-Key. */
export function newClassId(): string {
  return `CL-${newSerial().slice(3)}`;
}

export function classIdForIdempotencyKey(scope: string, key: string): string {
  return `CL-${derivedSerial(`pveflow-class:${scope}:${key}`).slice(3)}`;
}

/**
 * The serial of member `index` of a class: derived from the class id, so that a retried class submission lands on
 * the members it already made. `candidate` walks past serials other requests hold, like serialForDelivery.
 */
export function serialForClassMember(classId: string, index: number, candidate: number): string {
  return derivedSerial(`pveflow-class-member:${classId}:${index}:${candidate}`);
}
