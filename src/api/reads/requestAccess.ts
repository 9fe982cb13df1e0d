import type { Response } from 'express';
import type { Principal } from '../auth/apiKeys';
import { mayActIn } from '../auth/permissions';
import type { ApiContext } from '../http/context';
import { problem } from '../http/problems';
import { sendTemporalError } from '../http/temporalErrors';
import { OrgKey, RequestStatusKey } from '../../contracts/searchAttributes';
import { requestWorkflowId } from '../../contracts/workflowIds';
import type { Usage } from '../../domain/quotas';
import { sizeIn } from './quotaUse';

export interface FoundRequest {
  serial: string;
  org: string;
  /** False once the request workflow has ended: nothing can change it any more. */
  open: boolean;
  status?: string;
  /** What it holds of its org's quotas while it holds a VM (the size its memo carries). */
  size: Usage;
}

/**
 * The request behind a serial, if the principal may see it. Read from the workflow's own description (its search
 * attributes are set at submission), so it needs no worker and is never stale. A request of another org is answered
 * exactly like an unknown serial: 404, so that keys of one org cannot probe another's serials. So is a request of
 * another pveflow instance sharing the namespace (another task queue): it is not this API's to read or change.
 */
export async function findRequest(ctx: ApiContext, res: Response, principal: Principal, serial: string): Promise<FoundRequest | undefined> {
  let description;
  try {
    description = await ctx.temporal(() => ctx.client.workflow.getHandle(requestWorkflowId(serial)).describe());
  } catch (err) {
    sendTemporalError(res, err, serial);
    return undefined;
  }
  const org = description.typedSearchAttributes.get(OrgKey);
  if (description.type !== 'vmRequest' || description.taskQueue !== ctx.taskQueue || org === undefined || !mayActIn(principal, org)) {
    problem(res, 404, 'not found', `no request ${serial}`);
    return undefined;
  }
  return { serial, org, open: description.status.name === 'RUNNING', status: description.typedSearchAttributes.get(RequestStatusKey), size: sizeIn(description.memo) };
}
