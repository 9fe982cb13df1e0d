/**
 * A Proxmox task id: `UPID:<node>:<pid>:<pstart>:<starttime>:<type>:<id>:<user>:` (pve-common UPID.pm). The node in
 * the UPID is where the task runs, and the only node that can answer for it.
 */
export interface Upid {
  raw: string;
  node: string;
  pid: number;
  pstart: number;
  starttime: number;
  type: string;
  id: string;
  user: string;
}

const UPID_RE = /^UPID:([a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?):([0-9A-F]{8}):([0-9A-F]{8,9}):([0-9A-F]{8}):([^:\s/]+):([^:\s/]*):([^:\s/]+):$/;

export function parseUpid(raw: string): Upid {
  const m = UPID_RE.exec(raw);
  if (!m) throw new Error(`not a Proxmox task id (UPID): ${JSON.stringify(raw)}`);
  return {
    raw,
    node: m[1]!,
    pid: parseInt(m[3]!, 16),
    pstart: parseInt(m[4]!, 16),
    starttime: parseInt(m[5]!, 16),
    type: m[6]!,
    id: m[7]!,
    user: m[8]!,
  };
}

export function isUpid(value: unknown): value is string {
  return typeof value === 'string' && UPID_RE.test(value);
}
