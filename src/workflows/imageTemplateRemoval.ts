import { proxyActivities } from '@temporalio/workflow';
import type { createActivities } from '../activities';
import { cleanup } from './activityOptions';

type Activities = ReturnType<typeof createActivities>;
const undo = proxyActivities<Activities>(cleanup);

export interface ImageTemplateRemovalInput {
  /** The image deleted from the catalogue. */
  name: string;
  node: string;
  /** Its template: destroyed only when it carries the image's marker (pveflow imported it). */
  vmid: number;
}

/**
 * The template of an imported image, removed once the image left the catalogue (DELETE /api/images/{name}, which
 * refuses while a request uses the image). Its own workflow so that the removal is retried like a build's cleanup
 * and seen in Temporal UI; the activity destroys only a VM with the image's marker, so a template pveflow did not
 * make (an image seeded from PVEFLOW_IMAGES) is never touched: the workflow fails saying so.
 */
export async function imageTemplateRemoval(input: ImageTemplateRemovalInput): Promise<'destroyed' | 'absent'> {
  return undo.destroyImageVm(input);
}
