import { Envelope, type ApiRequest, type Route, type SimContext } from '../context';
import { paramError, permissionError, pveDie } from '../errors';
import type { TaskRecord } from '../tasks';
import { parseUpid } from '../upid';

/**
 * Task status, log and list (pve-manager `API2/Tasks.pm`, reference §3.2–3.4). A task is found only on the node
 * inside its UPID; its owner (the user, or exactly that token; a user also sees its tokens' tasks) may read it,
 * others need `Sys.Audit` on the node.
 */
function isOwner(req: ApiRequest, task: TaskRecord): boolean {
  const me = req.identity;
  const owner = task.identity;
  if (me.userid !== owner.userid) return false;
  return me.tokenName === undefined || me.tokenName === owner.tokenName;
}

/** The task a path names (`{node}`, `{upid}`): a task is found only on the node inside its UPID. */
function taskOfPath(req: ApiRequest, sim: SimContext): TaskRecord {
  const node = req.params.req('node');
  const upid = req.params.req('upid');
  const parsed = parseUpid(upid);
  if (!parsed) throw paramError({ upid: 'unable to parse worker upid' });
  const task = sim.tasks.get(upid);
  if (!task || parsed.node !== node) throw paramError({ upid: 'no such task' });
  return task;
}

/** The task a path names, when its owner or a `Sys.Audit` holder on the node reads it. */
function findTask(req: ApiRequest, sim: SimContext): TaskRecord {
  const task = taskOfPath(req, sim);
  const node = task.parsed.node;
  if (!isOwner(req, task) && !sim.perms.has(req.identity, `/nodes/${node}`, ['Sys.Audit'])) {
    throw permissionError(`/nodes/${node}, Sys.Audit`);
  }
  return task;
}

function userFields(task: TaskRecord): Record<string, string> {
  const { userid, tokenName } = task.identity;
  return tokenName ? { user: userid, tokenid: tokenName } : { user: userid };
}

/** What the task status and the task list both say of a task: its UPID's parts and its user. */
function taskFields(task: TaskRecord) {
  const p = task.parsed;
  return { upid: task.upid, node: p.node, pid: p.pid, pstart: p.pstart, starttime: p.starttime, type: p.type, id: p.id, ...userFields(task) };
}

const status: Route = {
  method: 'GET',
  path: '/nodes/{node}/tasks/{upid}/status',
  handle: (req, sim) => {
    const task = findTask(req, sim);
    return {
      ...taskFields(task),
      status: task.status,
      ...(task.status === 'stopped' ? { exitstatus: task.exitstatus } : {}),
    };
  },
};

const log: Route = {
  method: 'GET',
  path: '/nodes/{node}/tasks/{upid}/log',
  handle: (req, sim) => {
    const task = findTask(req, sim);
    const lines = task.lines.length ? task.lines : ['no content'];
    const start = req.params.int('start') ?? 0;
    const limit = req.params.int('limit') ?? 50;
    const slice = lines.slice(start, limit === 0 ? undefined : start + limit);
    return new Envelope(
      slice.map((t, i) => ({ n: start + i + 1, t })),
      { total: lines.length },
    );
  },
};

/** `ok` / `warning` / `error` / `unknown` as the task list's statusfilter classifies an exit status. */
function statusClass(t: TaskRecord): string {
  if (t.status === 'running') return 'running';
  if (t.exitstatus === 'OK') return 'ok';
  if (/^WARNINGS: \d+$/.test(t.exitstatus ?? '')) return 'warning';
  if (t.exitstatus === 'unexpected status') return 'unknown';
  return 'error';
}

const list: Route = {
  method: 'GET',
  path: '/nodes/{node}/tasks',
  handle: (req, sim) => {
    const p = req.params;
    const node = p.req('node');
    const source = p.str('source') ?? 'archive';
    const vmid = p.str('vmid');
    const typefilter = p.str('typefilter');
    const userfilter = p.str('userfilter')?.toLowerCase();
    const statusfilter = p
      .str('statusfilter')
      ?.toLowerCase()
      .split(/[,;\s]+/)
      .filter(Boolean);
    const errorsOnly = p.bool('errors') ?? false;
    const since = p.int('since');
    const until = p.int('until');
    const auditor = sim.perms.has(req.identity, `/nodes/${node}`, ['Sys.Audit']);
    const tasks = [...sim.tasks.onNode(node)]
      .filter((t) => (source === 'all' ? true : source === 'active' ? t.status === 'running' : t.status === 'stopped'))
      .filter((t) => vmid === undefined || t.parsed.id === vmid)
      .filter((t) => typefilter === undefined || t.parsed.type === typefilter)
      .filter((t) => userfilter === undefined || t.parsed.user.toLowerCase().includes(userfilter))
      .filter((t) => !errorsOnly || statusClass(t) === 'error')
      .filter((t) => !statusfilter || statusfilter.includes(statusClass(t)))
      .filter((t) => since === undefined || t.parsed.starttime >= since)
      .filter((t) => until === undefined || t.parsed.starttime <= until)
      .filter((t) => auditor || isOwner(req, t))
      .reverse();
    const start = p.int('start') ?? 0;
    const limit = p.int('limit') ?? 50;
    return tasks.slice(start, start + limit).map((t) => ({
      ...taskFields(t),
      ...(t.status === 'stopped' ? { status: t.exitstatus, endtime: t.endtime } : {}),
    }));
  },
};

/**
 * `DELETE /nodes/{node}/tasks/{upid}` (pve-manager `API2/Tasks.pm stop_task`): the task's owner, or `Sys.Modify`
 * on the node, stops it (PVE kills the worker's process group); answers null at once. Only workers that model what
 * a stop does to them (downloads) are stoppable here; stopping another running task is refused as not simulated.
 */
const stop: Route = {
  method: 'DELETE',
  path: '/nodes/{node}/tasks/{upid}',
  handle: (req, sim) => {
    const task = taskOfPath(req, sim);
    const node = task.parsed.node;
    if (!isOwner(req, task)) sim.perms.check(req.identity, `/nodes/${node}`, ['Sys.Modify']);
    if (task.status === 'running') {
      if (!task.stop) throw pveDie(`stopping a running '${task.parsed.type}' task is not simulated`);
      task.stop();
    }
    return null;
  },
};

export const taskRoutes: Route[] = [status, log, list, stop];
