import { METADATA_ENCODING_KEY } from '@temporalio/common';
import type { Client } from '@temporalio/client';
import { ENCRYPTED_ENCODING } from '../../src/temporal/codec';

/**
 * Payloads of ours a history holds unencrypted: every Payload (an object with `metadata` and `data`) whose encoding is
 * not the codec's, anywhere in the history but under search attributes — those stay readable by design, so that
 * operators can find requests — and the SDK's own bookkeeping in markers: a patch marker's `patch-data` (the patch id)
 * and a local activity marker's `data` (its type, sequence number and times; its `result` is ours, and encrypted).
 * Each finding names the event and the path to the payload.
 */
const SDK_MARKER_FIELDS = /\.markerRecordedEventAttributes\.details\.(patch-data|data)\.payloads\[\d+\]$/;
export function payloadsInClear(history: unknown): string[] {
  const found: string[] = [];
  const walk = (v: unknown, path: string): void => {
    if (v === null || typeof v !== 'object' || v instanceof Uint8Array) return;
    if (Array.isArray(v)) return v.forEach((x, i) => walk(x, `${path}[${i}]`));
    const o = v as Record<string, unknown>;
    if (path.endsWith('.searchAttributes') || path.endsWith('.indexedFields')) return;
    const metadata = o.metadata as Record<string, Uint8Array> | undefined;
    if (metadata && typeof metadata === 'object' && metadata[METADATA_ENCODING_KEY] instanceof Uint8Array) {
      const encoding = Buffer.from(metadata[METADATA_ENCODING_KEY]).toString('utf8');
      if (encoding !== ENCRYPTED_ENCODING && !SDK_MARKER_FIELDS.test(path)) found.push(`${path} (${encoding})`);
      return;
    }
    for (const [k, x] of Object.entries(o)) walk(x, `${path}.${k}`);
  };
  walk(history, 'history');
  return found;
}

/**
 * Every workflow of a task queue with its unencrypted payloads, read with a client that has no codec keys — through the
 * raw visibility call, since the client's own list would try to decode each workflow's (encrypted) memo.
 */
export async function clearPayloadsOfTaskQueue(
  rawClient: Client,
  taskQueue: string,
  /** Sees each history as read, for checks of its own (a secret's text). */
  onHistory: (workflowId: string, history: Awaited<ReturnType<ReturnType<Client['workflow']['getHandle']>['fetchHistory']>>) => void = () => {},
): Promise<{ workflows: number; findings: string[] }> {
  const findings: string[] = [];
  let workflows = 0;
  let nextPageToken: Uint8Array | undefined;
  do {
    const page = await rawClient.workflowService.listWorkflowExecutions({ namespace: rawClient.options.namespace, query: `TaskQueue = '${taskQueue}'`, pageSize: 1000, nextPageToken });
    for (const wf of page.executions ?? []) {
      workflows++;
      const { workflowId, runId } = wf.execution!;
      const history = await rawClient.workflow.getHandle(workflowId!, runId!).fetchHistory();
      onHistory(workflowId!, history);
      for (const f of payloadsInClear(history)) findings.push(`${workflowId}: ${f}`);
      for (const f of payloadsInClear({ memo: wf.memo })) findings.push(`${workflowId} (visibility): ${f}`);
    }
    nextPageToken = page.nextPageToken?.length ? page.nextPageToken : undefined;
  } while (nextPageToken);
  return { workflows, findings };
}
