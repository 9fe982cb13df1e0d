import type { Config } from '../config';

/** Where pveflow's Temporal lives, once the embedded default has (or has not) started a dev server. */
export interface TemporalSettings {
  address: string;
  namespace: string;
  taskQueue: string;
}

export function temporalSettings(config: Config): TemporalSettings {
  return {
    address: config.TEMPORAL_ADDRESS ?? `127.0.0.1:${config.TEMPORAL_PORT}`,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
  };
}
