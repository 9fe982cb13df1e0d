import { condition, setHandler, workflowInfo } from '@temporalio/workflow';
import { statusQuery } from '../../src/contracts/messages';
import type { VmRequestInput } from '../../src/contracts/types';

/** A stand-in vmRequest that stays Pending and answers its status: enough for the API's log stream to stay open. */
export async function vmRequest(input: VmRequestInput): Promise<void> {
  const at = new Date(workflowInfo().startTime).toISOString();
  setHandler(statusQuery, () => ({
    serial: input.request.serial,
    request: input.request,
    status: 'Pending' as const,
    device: { hostname: input.request.name },
    timeline: [{ at, event: 'submitted' }],
    leftovers: [],
  }));
  await condition(() => false);
}

/** A stand-in clusterSync that completes with the result it is given: the templates route reads completed runs. */
export async function clusterSync<T>(result: T): Promise<T> {
  return result;
}

/** The real image catalogue: the API reads (and seeds) it for every image and choice it checks. */
export { imageCatalogue } from '../../src/workflows/imageCatalogue';
