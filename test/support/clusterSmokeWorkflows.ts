import { condition, defineSignal, proxyActivities, setHandler, sleep, upsertSearchAttributes } from '@temporalio/workflow';
import { RequestStatusKey } from '../../src/contracts/searchAttributes';

/**
 * The least a workflow needs to prove a Temporal cluster keeps its word across crashes (test/temporal-cluster.test.ts):
 * a timer, a signal it waits for, an activity, and a custom search attribute upserted on the way.
 */
export const proceedSignal = defineSignal('proceed');

const { echo } = proxyActivities<{ echo(text: string): Promise<string> }>({ startToCloseTimeout: '30 seconds' });

export async function survivesRestarts(text: string): Promise<string> {
  let proceed = false;
  setHandler(proceedSignal, () => void (proceed = true));
  await sleep('1 second');
  upsertSearchAttributes([{ key: RequestStatusKey, value: 'Waiting' }]);
  await condition(() => proceed);
  const echoed = await echo(text);
  upsertSearchAttributes([{ key: RequestStatusKey, value: 'Done' }]);
  return echoed;
}
