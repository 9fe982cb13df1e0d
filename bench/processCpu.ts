import { readFileSync, readdirSync } from 'node:fs';

const TICK = 100; // USER_HZ on Linux

/** One process's stat fields after its name: [state, ppid, …]; undefined for one that is gone. */
function statOf(pid: number | string): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/**
 * CPU seconds (user + system) of the processes `pids` and of every live descendant of theirs, plus what their reaped
 * children used (cutime + cstime): the simulated world's sshd sessions, a Temporal server's workers. 0 without /proc.
 */
export function treeCpuSeconds(pids: Array<number | undefined>): number {
  const roots = new Set(pids.filter((p): p is number => p !== undefined));
  if (roots.size === 0) return 0;
  let all: string[];
  try {
    all = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return 0;
  }
  const parentOf = new Map<number, number>();
  const stats = new Map<number, string[]>();
  for (const p of all) {
    const f = statOf(p);
    if (!f) continue;
    parentOf.set(Number(p), Number(f[1]));
    stats.set(Number(p), f);
  }
  const inTree = (pid: number): boolean => {
    for (let p: number | undefined = pid, hops = 0; p !== undefined && p > 1 && hops < 64; p = parentOf.get(p), hops++) if (roots.has(p)) return true;
    return false;
  };
  let total = 0;
  for (const [pid, f] of stats) {
    if (!inTree(pid)) continue;
    // A root counts what its reaped children used; a descendant's own reaped children are counted the same way.
    total += (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / TICK;
  }
  return total;
}
