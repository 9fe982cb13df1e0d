import { cleanupActivities as undo } from './activityProxies';

export interface ImageTemplateRemovalInput {
  /** The image deleted from the catalogue. */
  name: string;
  node: string;
  /** Its template: destroyed only when it carries the image's marker (pveflow imported it). */
  vmid: number;
  /** Its other templates, when its import made one per node (storage local to each node). */
  others?: Array<{ node: string; vmid: number }>;
}

/**
 * The template of an imported image, removed once the image left the catalogue (DELETE /api/images/{name}, which
 * refuses while a request uses the image). Its own workflow so that the removal is retried like a build's cleanup
 * and seen in Temporal UI; the activity destroys only a VM with the image's marker, so a template pveflow did not
 * make (an image seeded from PVEFLOW_IMAGES) is never touched: the workflow fails saying so.
 */
export async function imageTemplateRemoval(input: ImageTemplateRemovalInput): Promise<'destroyed' | 'absent'> {
  let outcome: 'destroyed' | 'absent' = 'absent';
  for (const t of [{ node: input.node, vmid: input.vmid }, ...(input.others ?? [])]) {
    if ((await undo.destroyImageVm({ name: input.name, node: t.node, vmid: t.vmid })) === 'destroyed') outcome = 'destroyed';
  }
  return outcome;
}
