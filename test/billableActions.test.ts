import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { temporal } from '@temporalio/proto';
import { addCounts, billableActions, totalOf } from '../bench/billableActions';
import { historyFromJson } from './histories/historyJson';

/** Billable Actions counted from recorded histories (bench/billableActions.ts): each rule against a real history. */
const history = (name: string) => historyFromJson(readFileSync(join(__dirname, 'histories', `${name}.json`), 'utf8'));
const atOnce = () => 0;

describe('billable Actions from a history', () => {
  test('a build: its upserts, one Action per workflow task with markers, its activities and heartbeats, the grant it received; its start is its parent’s', () => {
    const c = billableActions(history('vmBuild-completed'), atOnce);
    assert.equal(c['workflow started'], 0, 'a child’s start is counted in its parent');
    assert.equal(c['search attributes upserted'], 4);
    assert.equal(c['local activities (one per workflow task)'], 2, 'three local activities in two workflow tasks');
    assert.equal(c['activity started'], 7);
    assert.equal(c['activity retried'], 0);
    assert.equal(c['signal received'], 1, 'the grant; the signals it sent are counted where received');
    assert.equal(c['activity heartbeat (estimated)'], 5, 'the five activities scheduled with a heartbeat timeout, each beating at once');
    assert.equal(totalOf(c), 4 + 2 + 7 + 1 + 5);
  });

  test('heartbeats: none for an activity that ends before its first beat, none without a heartbeat timeout', () => {
    assert.equal(billableActions(history('vmBuild-completed'), () => 60_000)['activity heartbeat (estimated)'], 0);
    assert.equal(billableActions(history('vmBuild-completed'), () => undefined)['activity heartbeat (estimated)'], 0);
  });

  test('a request: started by a client, two children at two Actions each, its Updates, timers, signals and upserts', () => {
    const c = billableActions(history('vmRequest-happy-path'));
    assert.deepEqual(
      {
        started: c['workflow started'],
        children: c['child workflow started'],
        updates: c['update accepted'],
        timers: c['timer started'],
        signals: c['signal received'],
        upserts: c['search attributes upserted'],
        activities: c['activity started'],
      },
      { started: 1, children: 4, updates: 2, timers: 2, signals: 2, upserts: 8, activities: 1 },
    );
  });

  test('an activity retried counts each attempt after the first; a schedule’s run counts three', () => {
    const h = history('vmCompletion-completed');
    const events = h.events!.map((e) => temporal.api.history.v1.HistoryEvent.fromObject(temporal.api.history.v1.HistoryEvent.toObject(e as temporal.api.history.v1.HistoryEvent)));
    const started = events.find((e) => e.eventType === temporal.api.enums.v1.EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)!;
    started.activityTaskStartedEventAttributes!.attempt = 3;
    assert.equal(billableActions({ events })['activity retried'], 2);
    const sync = history('clusterSync-run');
    const first = temporal.api.history.v1.HistoryEvent.fromObject(temporal.api.history.v1.HistoryEvent.toObject(sync.events![0] as temporal.api.history.v1.HistoryEvent));
    assert.equal(billableActions({ events: [first] })['workflow started'], 1);
    first.workflowExecutionStartedEventAttributes!.searchAttributes = { indexedFields: { TemporalScheduledById: { data: Buffer.from('"sync"') } } };
    const scheduled = billableActions({ events: [first] });
    assert.equal(scheduled['schedule run'], 3);
    assert.equal(scheduled['workflow started'], 0);
  });

  test('the coordinator counts the signals it receives and its timer; counts add up by kind', () => {
    const c = billableActions(history('cloneSlots-two-builds'));
    assert.equal(c['signal received'], 6);
    assert.equal(c['timer started'], 1);
    const both = addCounts(c, billableActions(history('vmBuild-completed'), atOnce));
    assert.equal(both['signal received'], 7);
    assert.equal(totalOf(both), totalOf(c) + 19);
  });
});
