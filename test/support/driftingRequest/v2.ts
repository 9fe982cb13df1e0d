import { setHandler, sleep, upsertMemo } from '@temporalio/workflow';
import { statusQuery } from '../../../src/contracts/messages';
import type { RequestRecord } from '../../../src/contracts/types';

/**
 * The same workflow type changed without patched(): a memo written before the timer. A worker running this cannot
 * replay a history v1 made (its first command differs): what a release shipped with an unguarded change does.
 */
export async function vmRequest(record: RequestRecord): Promise<void> {
  setHandler(statusQuery, () => record);
  upsertMemo({ changed: 'without patched()' });
  await sleep('1 day');
}
