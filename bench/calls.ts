import { callsBetween, runLifecycles } from './lifecycle';
import { machineLine, runBench, startBenchStack } from './embeddedBench';

/**
 * Proxmox and NetBird calls per build and per completion, as the simulators count them (every HTTP request, per
 * `METHOD route`). Polls (a task's status while it runs, the guest agent while the guest boots) are counted apart:
 * their number follows how long the cluster takes, not what pveflow decides to do. SIM_TIMING=fast so that tasks and
 * the guest agent do take a little while, as they would on a cluster.
 * Run: `npm run bench:calls` (BENCH_BUILDS, default 20).
 */
const N = Number(process.env.BENCH_BUILDS ?? 20);

/** Routes whose calls are waiting, not doing. (status/current is a decision's read, counted as a call.) */
const isPoll = (route: string) => /\/tasks\/\{upid\}\/status$|\/agent\//.test(route);
/** During a build, NetBird's peer list is read only by the wait for the VM to join: polls, like the guest agent's. */
const isBuildPoll = (route: string) => isPoll(route) || route === 'GET /api/peers';

function report(out: string[], label: string, calls: Record<string, number>, n: number, poll = isPoll): { work: number; polls: number } {
  let work = 0;
  let polls = 0;
  out.push(`${label}:`);
  for (const [route, count] of Object.entries(calls).sort()) {
    const polled = poll(route);
    if (polled) polls += count;
    else work += count;
    out.push(`  ${(count / n).toFixed(2).padStart(7)}  ${route}${polled ? '  (poll)' : ''}`);
  }
  return { work: work / n, polls: polls / n };
}

runBench(
  () => startBenchStack('fast'),
  async (b, figures) => {
    const { calls } = await runLifecycles(b, N);
    figures.push(`calls per request, averaged over ${N} lifecycles (SIM_TIMING=fast):`);
    const buildPve = report(figures, 'Proxmox, build', callsBetween(calls.submitted.pve, calls.fulfilled.pve), N);
    const buildNb = report(figures, 'NetBird, build', callsBetween(calls.submitted.netbird, calls.fulfilled.netbird), N, isBuildPoll);
    const donePve = report(figures, 'Proxmox, completion', callsBetween(calls.fulfilled.pve, calls.completed.pve), N);
    const doneNb = report(figures, 'NetBird, completion', callsBetween(calls.fulfilled.netbird, calls.completed.netbird), N);
    figures.push(machineLine());
    figures.push(
      `per build:      Proxmox ${buildPve.work.toFixed(1)} calls + ${buildPve.polls.toFixed(1)} polls; NetBird ${buildNb.work.toFixed(1)} calls + ${buildNb.polls.toFixed(1)} polls  (target ≤ 10 Proxmox + ≤ 5 NetBird besides polls)`,
    );
    figures.push(`per completion: Proxmox ${donePve.work.toFixed(1)} calls + ${donePve.polls.toFixed(1)} polls; NetBird ${doneNb.work.toFixed(1)} calls + ${doneNb.polls.toFixed(1)} polls`);
  },
);
