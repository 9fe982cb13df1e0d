import { CancellationScope, condition, isCancellation, setHandler, workflowInfo } from '@temporalio/workflow';
import { importStatusQuery, type ImageImportInput, type ImportTask } from '../../src/contracts/imageImport';
import { statusQuery } from '../../src/contracts/messages';
import type { VmRequestInput } from '../../src/contracts/types';
import type { ImageTemplateRemovalInput } from '../../src/workflows/imageTemplateRemoval';

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

/** The real API key registry: the API issues and revokes keys through it (schemathesis calls both). */
export { apiKeyRegistry } from '../../src/workflows/apiKeyRegistry';

/**
 * A stand-in imageImport that runs until it is cancelled, answering its status as the real one does (the real one
 * downloads and builds a template: test/imageImport.test.ts).
 */
export async function imageImport(input: ImageImportInput): Promise<void> {
  const run: ImportTask = { name: input.name, state: 'running', stage: 'downloading', bytes: 1024, log: [], leftovers: [], startedAt: new Date().toISOString() };
  setHandler(importStatusQuery, () => run);
  try {
    await CancellationScope.current().cancelRequested;
  } catch (err) {
    if (!isCancellation(err)) throw err;
    run.state = 'cancelled';
    run.endedAt = new Date().toISOString();
    throw err;
  }
}

/** A stand-in imageTemplateRemoval that answers what it was asked to remove (the real one destroys it: test/imageImport.test.ts). */
export async function imageTemplateRemoval(input: ImageTemplateRemovalInput): Promise<ImageTemplateRemovalInput> {
  return input;
}
