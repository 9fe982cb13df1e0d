import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ActivityFailure, ApplicationFailure, ChildWorkflowFailure, RetryState, TimeoutFailure, TimeoutType } from '@temporalio/common';
import { failureMessage } from '../src/workflows/failureMessage';

/**
 * One helper words every failure a workflow records (issue 27: five helpers dug the message out, each its own way, and
 * the lease notice, the key shredding and the NetBird cleanup recorded "Activity task failed" instead of the reason).
 */
describe('the failure a workflow records', () => {
  const proxmox = ApplicationFailure.create({ message: 'VM 101 is locked (snapshot)' });
  const activity = (cause: Error) => new ActivityFailure('Activity task failed', 'moveSnippet', '7', RetryState.MAXIMUM_ATTEMPTS_REACHED, 'worker', cause);

  test("is what the activity said, not Temporal's wrapper", () => {
    assert.equal(failureMessage(activity(proxmox)), 'VM 101 is locked (snapshot)');
  });

  test('through a child workflow and its activity', () => {
    const child = new ChildWorkflowFailure('default', { workflowId: 'vm-build-VM-1-1', runId: 'r' }, 'vmBuild', RetryState.NON_RETRYABLE_FAILURE, activity(proxmox));
    assert.equal(failureMessage(child), 'VM 101 is locked (snapshot)');
  });

  test('a timeout says it timed out; anything else its own message', () => {
    assert.match(failureMessage(activity(new TimeoutFailure('activity StartToClose timeout', undefined, TimeoutType.START_TO_CLOSE))), /timeout/);
    assert.equal(failureMessage(new Error('plain')), 'plain');
    assert.equal(failureMessage('text'), 'text');
  });
});
