import { setHandler, sleep } from '@temporalio/workflow';
import { statusQuery } from '../../../src/contracts/messages';
import type { RequestRecord } from '../../../src/contracts/types';

/** A request's workflow as some release ran it: answers its status, then waits a day (its first command: a timer). */
export async function vmRequest(record: RequestRecord): Promise<void> {
  setHandler(statusQuery, () => record);
  await sleep('1 day');
}
