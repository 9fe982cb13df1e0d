/**
 * The ids of pveflow's workflows and schedules, written once: the API, the workers, the sync and the tests find a
 * workflow by these names and nothing else. Coordination workflows and the sync are one per task queue, so that two
 * instances sharing a namespace (docs/operations.md) never touch each other's.
 */

/** A request is found by its serial: its workflow is the system of record for it. */
export const requestWorkflowId = (serial: string): string => `vm-request-${serial}`;

/** One build attempt of a request (a rebuild is the next attempt). */
export const buildWorkflowId = (serial: string, attempt: number): string => `vm-build-${serial}-${attempt}`;

/** The cleanup of a request, once. */
export const completionWorkflowId = (serial: string): string => `vm-completion-${serial}`;

/** The clone slots of a deployment (its workers share a task queue, and the cluster). */
export const cloneSlotsWorkflowId = (taskQueue: string): string => `pveflow-clone-slots-${taskQueue}`;

/** The address pool of a deployment (its workers share a task queue, and the cluster's network). */
export const ipPoolWorkflowId = (taskQueue: string): string => `pveflow-ip-pool-${taskQueue}`;

/** The sync Schedule of one instance: one per task queue, so instances never rewrite each other's. */
export const syncScheduleId = (taskQueue: string): string => `pveflow-cluster-sync-${taskQueue}`;

/** The id each run of an instance's sync starts with (the Schedule appends its time). */
export const syncWorkflowId = (taskQueue: string): string => `cluster-sync-${taskQueue}`;

/** The image catalogue of a deployment (its API processes and workers share a task queue). */
export const imageCatalogueWorkflowId = (taskQueue: string): string => `pveflow-image-catalogue-${taskQueue}`;

/** An image's import: one at a time per name (a second import of the same name is refused while the first runs). */
export const imageImportWorkflowId = (taskQueue: string, name: string): string => `image-import-${taskQueue}-${name}`;

/** The removal of a deleted imported image's template (one per name at a time). */
export const imageTemplateRemovalWorkflowId = (taskQueue: string, name: string): string => `image-template-removal-${taskQueue}-${name}`;

/** The API keys issued at run time of one deployment (its API processes share a task queue). */
export const apiKeyRegistryWorkflowId = (taskQueue: string): string => `pveflow-api-keys-${taskQueue}`;
