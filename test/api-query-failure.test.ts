import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { bundleWorkflowCode, Worker, type WorkflowBundle } from '@temporalio/worker';
import { OrgKey, SerialKey } from '../src/contracts/searchAttributes';
import { requestWorkflowId } from '../src/contracts/workflowIds';
import type { RequestRecord } from '../src/contracts/types';
import { startApiOnDevServer, twoOrgsAndOperator, type ApiOnDevServer } from './support/apiOnDevServer';
import { deviceRequest } from './support/requestDriver';
import { quietLogger } from './support/quietLogger';
import { defaultRequestChoiceSettings } from '../src/requestChoices';

/**
 * A request whose history the running workers cannot replay (a workflow change shipped without patched()): reading it
 * is a 500 that says so and what to do, never a 503 "try again" (no retry changes a non-deterministic replay).
 */
describe('API: a request the workers cannot replay', () => {
  const keys = twoOrgsAndOperator();
  /** The API's task queue, where the test runs one version's worker at a time. */
  const driftQueue = `drift-${process.pid}`;
  let api: ApiOnDevServer<keyof typeof keys>;
  let v1: WorkflowBundle;
  let v2: WorkflowBundle;

  before(async () => {
    const bundle = (version: string) => bundleWorkflowCode({ workflowsPath: require.resolve(`./support/driftingRequest/${version}`), logger: quietLogger });
    [v1, v2] = await Promise.all([bundle('v1'), bundle('v2')]);
    api = await startApiOnDevServer({ taskQueue: driftQueue, keys, choices: defaultRequestChoiceSettings });
  });
  after(async () => api?.stop());

  const runWorker = async <T>(workflowBundle: WorkflowBundle, fn: () => Promise<T>): Promise<T> => {
    const worker = await Worker.create({ connection: api.env.nativeConnection, namespace: 'default', taskQueue: driftQueue, workflowBundle, maxCachedWorkflows: 0 });
    return worker.runUntil(fn());
  };

  test('GET answers 500 "workflow not replayable" with what to do; the same request reads fine where its code runs', async () => {
    const serial = 'VM-ND001';
    const request = deviceRequest(serial);
    const record: RequestRecord = { serial, request, status: 'Pending', device: { hostname: 'lab' }, timeline: [], leftovers: [] };
    await runWorker(v1, async () => {
      const handle = await api.env.client.workflow.start('vmRequest', {
        workflowId: requestWorkflowId(serial),
        taskQueue: driftQueue,
        args: [record],
        typedSearchAttributes: [
          { key: SerialKey, value: serial },
          { key: OrgKey, value: request.org },
        ],
      });
      // Its first task done (the timer started): what v1 wrote is in the history.
      for (let i = 0; i < 100 && !(await handle.fetchHistory()).events?.some((e) => e.timerStartedEventAttributes); i++) await new Promise((r) => setTimeout(r, 100));
      const fine = await api.call('acme', 'GET', `/api/device_requests/${serial}`);
      assert.equal(fine.status, 200, JSON.stringify(fine.body));
    });

    const drifted = await runWorker(v2, () => api.call('acme', 'GET', `/api/device_requests/${serial}`));
    assert.equal(drifted.status, 500, JSON.stringify(drifted.body));
    assert.equal(drifted.body.error, 'workflow not replayable');
    assert.match(drifted.body.detail, new RegExp(`request ${serial}`));
    assert.match(drifted.body.detail, /Retrying will not help/);
    assert.match(drifted.body.detail, /patched\(\)/);
  });
});
