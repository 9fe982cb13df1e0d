import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { RequestStatus } from '../src/contracts/types';
import { after, decide, refusal, REQUEST_ACTIONS, REQUEST_EVENTS, REQUEST_STATUSES, type RequestAction, type RequestEvent } from '../src/domain/requestLifecycle';

/**
 * The request's lifecycle, cell by cell, written out here independently of the table it checks: a cell is the status
 * the action leads to, or `-` where it is refused. A new action (or status) fails the completeness test until its
 * row (column) is written here too.
 */
const S: RequestStatus[] = ['Pending', 'Approved', 'Imaging', 'Provisioning', 'Configuring', 'Fulfilled', 'Failed', 'Rejected', 'Expired', 'Cancelled', 'Cancelling', 'Completing', 'Completed'];
const EXPECTED: Record<RequestAction | RequestEvent, Array<RequestStatus | '-' | '='>> = {
  //                   Pending     Approved     Imaging       Provisioning  Configuring   Fulfilled    Failed       Rejected Expired Cancelled    Cancelling    Completing  Completed
  approve: ['Approved', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-'],
  reject: ['Rejected', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-'],
  rebuild: ['-', '-', '-', '-', '-', '-', 'Approved', '-', '-', 'Approved', '-', '-', '-'],
  complete: ['-', 'Completing', '-', '-', '-', 'Completing', 'Completing', '-', '-', 'Completing', '-', '-', '-'],
  cancel: ['-', 'Cancelled', 'Cancelling', 'Cancelling', 'Cancelling', '-', '-', '-', '-', '-', '-', '-', '-'],
  extend: ['=', '=', '=', '=', '=', '=', '-', '-', '-', '-', '-', '-', '-'],
  revealCredentials: ['-', '-', '-', '-', '-', '=', '-', '-', '-', '-', '-', '-', '-'],
  power: ['-', '-', '-', '-', '-', '=', '-', '-', '-', '-', '-', '-', '-'],
  reconfigure: ['-', '-', '-', '-', '-', '=', '-', '-', '-', '-', '-', '-', '-'],
  snapshot: ['-', '-', '-', '-', '-', '=', '-', '-', '-', '-', '-', '-', '-'],
  migrate: ['-', '-', '-', '-', '-', '=', '-', '-', '-', '-', '-', '-', '-'],
  expired: ['Expired', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-'],
  buildStarted: ['-', 'Imaging', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-'],
  buildProvisioning: ['-', '-', 'Provisioning', 'Provisioning', 'Provisioning', '-', '-', '-', '-', '-', '=', '-', '-'],
  buildConfiguring: ['-', '-', 'Configuring', 'Configuring', 'Configuring', '-', '-', '-', '-', '-', '=', '-', '-'],
  buildSucceeded: ['-', '-', 'Fulfilled', 'Fulfilled', 'Fulfilled', '-', '-', '-', '-', '-', 'Fulfilled', '-', '-'],
  buildFailed: ['-', '-', 'Failed', 'Failed', 'Failed', '-', '-', '-', '-', '-', 'Failed', '-', '-'],
  buildCancelled: ['-', 'Cancelled', 'Cancelled', 'Cancelled', 'Cancelled', '-', '-', '-', '-', '-', 'Cancelled', '-', '-'],
  vmVanished: ['-', '-', '-', '-', '-', 'Failed', '-', '-', '-', '-', '-', '-', '-'],
  requestCancelled: ['-', 'Cancelled', 'Cancelled', 'Cancelled', 'Cancelled', 'Cancelled', 'Cancelled', '-', '-', 'Cancelled', 'Cancelled', '-', '-'],
  cleanupStarted: ['-', 'Completing', '-', '-', '-', 'Completing', 'Completing', '-', '-', 'Completing', '-', '-', '-'],
  cleanedUp: ['-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', 'Completed', '-'],
  cleanedUpAfterCancel: ['-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', 'Cancelled', '-'],
};

describe('request lifecycle table', () => {
  test('names every status and every action the expected table names, in both directions', () => {
    assert.deepEqual([...REQUEST_STATUSES].sort(), [...S].sort());
    assert.deepEqual([...REQUEST_ACTIONS, ...REQUEST_EVENTS].sort(), Object.keys(EXPECTED).sort());
  });

  for (const [action, row] of Object.entries(EXPECTED) as Array<[RequestAction | RequestEvent, Array<RequestStatus | '-' | '='>]>) {
    for (const [i, status] of S.entries()) {
      const cell = row[i]!;
      const name = cell === '-' ? `${action} is refused while ${status}` : `${action} while ${status} leads to ${cell === '=' ? status : cell}`;
      test(name, () => {
        const verdict = decide(status, action);
        if (cell === '-') {
          assert.equal(verdict.allowed, false);
          // The refusal says what the request is doing and when the action would be allowed.
          if (!verdict.allowed) assert.match(verdict.reason, new RegExp(`${action} only when `));
        } else {
          assert.deepEqual(verdict, { allowed: true, next: cell === '=' ? status : cell });
        }
      });
    }
  }

  test('a refused update names the request, its status and why, in the words of the 409', () => {
    assert.equal(
      refusal('VM-7K2Q9', 'Fulfilled', 'cancel'),
      'cannot cancel request VM-7K2Q9: it is Fulfilled — its VM is built and in use (complete the request to remove it); cancel only when Approved or Imaging or Provisioning or Configuring',
    );
    assert.equal(refusal('VM-7K2Q9', 'Pending', 'approve'), undefined);
  });

  test('an event the table does not allow is a bug in the runbook: it throws rather than moves', () => {
    assert.equal(after('Approved', 'buildStarted'), 'Imaging');
    assert.throws(() => after('Completed', 'buildStarted'), /buildStarted cannot happen while Completed/);
  });
});
