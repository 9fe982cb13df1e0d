/**
 * Memo keys a request's workflow carries for readers that list many requests at once (a memo comes with the list;
 * a query would cost one call per request). Written by the API at submission and by the workflow when a day-2
 * operation changes the request's size.
 */

/** The size a request is counted at by the org quotas (domain/quotas `sizeOf`). */
export const QUOTA_SIZE_MEMO = 'quotaSize';

/** The image a request is built from (its name, if it named one) and the template its VM is cloned from. */
export const IMAGE_MEMO = 'image';
export interface ImageMemo {
  name?: string;
  templateVmid?: number;
}
