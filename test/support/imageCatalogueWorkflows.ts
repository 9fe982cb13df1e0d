import { CancellationScope, isCancellation, setHandler } from '@temporalio/workflow';
import { importStatusQuery, type ImageImportInput, type ImportTask } from '../../src/contracts/imageImport';
import type { ImageTemplateRemovalInput } from '../../src/workflows/imageTemplateRemoval';

/**
 * The workflows the catalogue API needs, for a test of the API alone: the real image catalogue, a clusterSync that
 * returns the templates it is given, a vmRequest that stays Pending (a request using an image), and an imageImport
 * that runs until it is cancelled, answering its status as the real one does, and an imageTemplateRemoval that answers
 * what it was asked to remove (the real one destroys it: test/imageImport.test.ts).
 */
export { imageCatalogue } from '../../src/workflows/imageCatalogue';
export { vmRequest, clusterSync } from './pendingRequestWorkflow';

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

export async function imageTemplateRemoval(input: ImageTemplateRemovalInput): Promise<ImageTemplateRemovalInput> {
  return input;
}
