/** One start-up check's verdict, in an operator's words: what was checked, what was found, what to do about it. */
export interface Finding {
  /** Stable name of the check: `pve.privileges /pool/pveflow`, `sftp pve2`, `netbird.token`. */
  check: string;
  ok: boolean;
  message: string;
  /** What to change, when `ok` is false: a command to run or a setting to set. */
  fix?: string;
}

export const pass = (check: string, message: string): Finding => ({ check, ok: true, message });
export const fail = (check: string, message: string, fix?: string): Finding => ({ check, ok: false, message, ...(fix ? { fix } : {}) });
