import { readFileSync } from 'node:fs';
import type { RequestSummary, UpdateAnswer } from '../../contracts/apiSchemas';
import type { RequestRecord } from '../../contracts/types';
import { bounds, checked, flagSchemas, wholeNumber } from '../checks';
import { usageError } from '../cliError';
import type { Command } from '../command';
import { serialArg, type CliContext } from '../context';
import { dateFlag, shortTime } from '../dates';
import { exitCodes } from '../exitCodes';
import { formatFields, formatTable } from '../output/table';
import { choiceFlags, setChoices } from './choiceFlags';

const base = '/api/device_requests';

const noArgs = (ctx: CliContext) => {
  if (ctx.args.length) throw usageError(`unexpected argument: ${ctx.args.join(' ')}`);
};

const list: Command = {
  words: ['requests', 'list'],
  synopsis: '[--org ORG] [--status STATUS] [--consultant EMAIL] [--from DATE] [--to DATE] [--page-size N] [--page-token T]',
  summary: 'the requests the key may see, newest first (a page at a time)',
  flags: ['org', 'status', 'consultant', 'from', 'to', 'page-size', 'page-token'],
  async run(ctx) {
    noArgs(ctx);
    const f = ctx.flags;
    if ((f.consultant?.length ?? 0) > 1) throw usageError('requests list filters by one --consultant');
    const from = f.from === undefined ? undefined : dateFlag('from', f.from);
    const to = f.to === undefined ? undefined : dateFlag('to', f.to);
    if (from && to && Date.parse(to) < Date.parse(from)) throw usageError(`--to ${to} is before --from ${from}`);
    const answer = await ctx.api().get<{ items: RequestSummary[]; next_page_token?: string }>(base, {
      org: f.org === undefined ? undefined : checked('org', f.org, flagSchemas.org),
      status: f.status === undefined ? undefined : checked('status', f.status, flagSchemas.status),
      consultant: f.consultant?.[0] === undefined ? undefined : checked('consultant', f.consultant[0], flagSchemas.email),
      from,
      to,
      page_size: f['page-size'] === undefined ? undefined : String(wholeNumber('page-size', f['page-size'], bounds.pageSize, 'requests per page')),
      page_token: f['page-token'] === undefined ? undefined : checked('page-token', f['page-token'], flagSchemas.pageToken),
    });
    if (ctx.json) return (ctx.out(answer.text), exitCodes.ok);
    const { items, next_page_token } = answer.body;
    if (!items.length) ctx.err('no requests');
    else {
      ctx.out(
        formatTable(
          ['SERIAL', 'NAME', 'STATUS', 'BUILD', 'ORG', 'NODE', 'VMID', 'START (UTC)', 'END (UTC)', 'CONSULTANTS'],
          items.map((r) => [r.serial, r.name, r.status, r.build_status, r.org, r.node, r.vm_id, shortTime(r.period.start), shortTime(r.period.end), r.consultants.join(', ')]),
          { styled: ctx.styled },
        ),
      );
    }
    if (next_page_token) ctx.err(`more: add --page-token ${next_page_token}`);
    return exitCodes.ok;
  },
};

const show: Command = {
  words: ['requests', 'show'],
  synopsis: '<serial>',
  summary: 'one request: status, build, VM, node, IP, VPN name, timeline',
  flags: [],
  async run(ctx) {
    const serial = serialArg(ctx);
    const answer = await ctx.api().get<RequestRecord>(`${base}/${serial}`);
    if (ctx.json) return (ctx.out(answer.text), exitCodes.ok);
    const r = answer.body;
    const build = r.build;
    ctx.out(
      formatFields([
        ['Serial', r.serial],
        ['Name', r.request.name],
        ['Org', r.request.org],
        ['Requester', r.request.requester],
        ['Consultants', r.request.consultants.join(', ')],
        ['Period (UTC)', `${shortTime(r.request.period?.start) ?? '?'} → ${shortTime(r.request.period?.end) ?? '?'}`],
        ['Image', r.request.image ?? (r.request.templateVmid !== undefined ? `template ${r.request.templateVmid}` : 'default')],
        ['Size', `${r.request.cores} cores, ${r.request.memoryMiB} MiB${r.request.diskGiB ? `, ${r.request.diskGiB} GiB disk` : ''}`],
        ...(r.request.network ? ([['Network', `${r.request.network.bridge}${r.request.network.vlan !== undefined ? ` VLAN ${r.request.network.vlan}` : ''}`]] as const) : []),
        ...(r.request.cloudInit
          ? ([
              [
                'First boot',
                Object.entries(r.request.cloudInit)
                  .map(([k, v]) => `${k} (${Array.isArray(v) ? v.length : Object.keys(v ?? {}).length})`)
                  .join(', '),
              ],
            ] as const)
          : []),
        ['Status', r.status],
        ['Build', build ? `#${build.attempt} ${build.state}, ${build.stage} ${build.progress} %` : undefined],
        ...(build?.error ? ([['Build error', build.error]] as const) : []),
        ['VMID', r.device.vmid],
        ['Node', r.device.node],
        ['Hostname', r.device.hostname],
        ['IP', r.device.ip],
        ['VPN name', r.device.vpnHostname],
        ['VPN IP', r.device.vpnIp],
        ['Credentials', credentialState(r)],
        ...(r.leftovers.length ? ([['Left over', r.leftovers.join('; ')]] as const) : []),
        ...(r.drift ? ([['Drift', `${r.drift.kind} (seen ${shortTime(r.drift.at)})`]] as const) : []),
        // Day-2 operations (pveflow vm ...): the VM's state, its snapshots, the operation under way or the last one.
        ['VM state', r.device.state],
        ...(r.snapshots?.length ? ([['Snapshots', r.snapshots.map((x) => x.name).join(', ')]] as const) : []),
        ...(r.operations?.length ? ([['Last operation', operationLine(r.operations[r.operations.length - 1]!)]] as const) : []),
      ]),
    );
    const builds = [...(r.previousBuilds ?? []), ...(build ? [build] : [])];
    if (builds.length) {
      ctx.out('');
      ctx.out(
        formatTable(
          ['BUILD', 'STATE', 'NODE', 'VMID', 'STARTED (UTC)', 'ENDED (UTC)', 'TOOK', 'ERROR'],
          builds.map((b) => [`#${b.attempt}`, b.state, b.node, b.vmid, shortTime(b.startedAt), shortTime(b.endedAt), b.durationSeconds !== undefined ? `${b.durationSeconds} s` : undefined, b.error]),
          { styled: ctx.styled },
        ),
      );
    }
    if (r.timeline.length) {
      ctx.out('');
      ctx.out(
        formatTable(
          ['AT (UTC)', 'EVENT', 'BY'],
          r.timeline.map((t) => [shortTime(t.at), t.event, t.by]),
          { styled: ctx.styled },
        ),
      );
    }
    return exitCodes.ok;
  },
};

function operationLine(o: NonNullable<RequestRecord['operations']>[number]): string {
  return `${o.what}: ${o.state}${o.outcome ? ` (${o.outcome})` : ''} by ${o.by}, ${shortTime(o.startedAt)}`;
}

function credentialState(r: RequestRecord): string | undefined {
  const c = r.credentials;
  if (!c) return undefined;
  if (c.revealedTo) return `taken by ${c.revealedTo}${c.revealedAt ? ` at ${shortTime(c.revealedAt)}` : ''}`;
  return c.available ? 'waiting for a consultant (pveflow credentials <serial>)' : 'none';
}

const submit: Command = {
  words: ['requests', 'new'],
  synopsis:
    '[--file FILE|-] --name NAME --client ORG --requester EMAIL --consultant EMAIL... --start DATE --end DATE [--image NAME] [--cores N] [--memory-mib N] [--disk-gib N] [--bridge BR [--vlan N]] [--full-clone|--linked-clone] [--ssh-key KEY...] [--package PKG...] [--runcmd CMD...] [--write-file GUEST_PATH=LOCAL_FILE...] [--cloud-config YAML_FILE]',
  summary: 'file a request, from flags or a JSON body (a file, or - for stdin); flags override the file',
  flags: ['file', 'name', 'client', 'requester', 'consultant', 'start', 'end', ...choiceFlags, 'cores', 'memory-mib', 'full-clone', 'linked-clone', 'ssh-key'],
  async run(ctx) {
    noArgs(ctx);
    const body = submissionBody(ctx);
    const answer = await ctx.api().post<{ serial: string; status: string }>(base, body);
    if (ctx.json) return (ctx.out(answer.text), exitCodes.ok);
    ctx.out(`${answer.body.serial}  ${answer.body.status}`);
    return exitCodes.ok;
  },
};

/** Flags `requests new` cannot do without when no --file supplies the rest. */
const requiredForSubmission = [
  ['name', 'name'],
  ['client', 'client'],
  ['requester', 'requester'],
  ['consultant', 'consultants'],
  ['start', 'period.start'],
  ['end', 'period.end'],
] as const;

/**
 * The submission's body: the file's JSON (if any) with each flag given laid over it. Every flag's value is checked
 * here by the API's own rules (exit 2, nothing sent); what a file holds is the API's to judge.
 */
export function submissionBody(ctx: CliContext, opts: { className?: boolean } = {}): Record<string, unknown> {
  const f = ctx.flags;
  if (f.file === undefined) {
    const missing = requiredForSubmission.filter(([flag]) => f[flag] === undefined).map(([flag]) => `--${flag}`);
    if (missing.length) throw usageError(`missing ${missing.join(', ')} (or give them in a --file body)`);
  }
  const body: Record<string, unknown> = f.file === undefined ? {} : readBodyFile(f.file);
  const set = (key: string, value: unknown) => {
    if (value !== undefined) body[key] = value;
  };
  set('name', f.name === undefined ? undefined : checked('name', f.name, opts.className ? flagSchemas.className : flagSchemas.name));
  set('client', f.client === undefined ? undefined : checked('client', f.client, flagSchemas.org));
  set('requester', f.requester === undefined ? undefined : checked('requester', f.requester, flagSchemas.email));
  set(
    'consultants',
    f.consultant
      ?.flatMap((c) =>
        c
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean),
      )
      .map((c) => checked('consultant', c, flagSchemas.email)),
  );
  if (f.consultant !== undefined && (body.consultants as unknown[]).length === 0) throw usageError('--consultant needs at least one email address');
  if (f.start !== undefined || f.end !== undefined) {
    const period = { ...(isObject(body.period) ? body.period : {}) } as Record<string, unknown>;
    if (f.start !== undefined) period.start = dateFlag('start', f.start);
    // A relative end (+14d) counts from the start when there is one.
    const start = typeof period.start === 'string' && !Number.isNaN(Date.parse(period.start)) ? new Date(period.start) : new Date();
    if (f.end !== undefined) period.end = dateFlag('end', f.end, start);
    if (typeof period.start === 'string' && typeof period.end === 'string' && !(Date.parse(period.end) > Date.parse(period.start))) {
      throw usageError(`the period must end after it starts: ${period.start} → ${period.end}`);
    }
    body.period = period;
  }
  set('cores', integerFlag('cores', f.cores, bounds.cores, 'CPU cores'));
  set('memory_mib', integerFlag('memory-mib', f['memory-mib'], bounds.memoryMiB, 'MiB of memory'));
  setChoices(body, f);
  if (f['full-clone'] && f['linked-clone']) throw usageError('--full-clone and --linked-clone exclude each other');
  if (f['full-clone']) body.full_clone = true;
  if (f['linked-clone']) body.full_clone = false;
  if (f['ssh-key']?.some((k) => !k.trim())) throw usageError('--ssh-key needs a public key (e.g. "ssh-ed25519 AAAA... you@host")');
  set('ssh_keys', f['ssh-key']);
  return body;
}

function readBodyFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path === '-' ? 0 : path, 'utf8');
  } catch (err) {
    throw usageError(`cannot read ${path === '-' ? 'stdin' : path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw usageError(`${path === '-' ? 'stdin' : path} is not JSON: ${(err as Error).message}`);
  }
  if (!isObject(parsed)) throw usageError(`${path === '-' ? 'stdin' : path} must hold one JSON object (the request's body)`);
  return parsed;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function integerFlag(flag: string, value: string | undefined, range: { min: number; max: number }, what: string): number | undefined {
  return value === undefined ? undefined : wholeNumber(flag, value, range, what);
}

/** approve, reject, cancel, rebuild, extend, complete: a Workflow Update through the API; the answer is the new status. */
function action(name: string, summary: string, flags: Command['flags'], synopsis: string, body: (ctx: CliContext) => Record<string, unknown>): Command {
  return {
    words: ['requests', name],
    synopsis: `<serial> ${synopsis}`.trim(),
    summary,
    flags,
    async run(ctx) {
      const serial = serialArg(ctx);
      const payload = body(ctx); // checked before anything is sent
      const answer = await ctx.api().post<UpdateAnswer>(`${base}/${serial}/${name}`, payload);
      if (ctx.json) return (ctx.out(answer.text), exitCodes.ok);
      ctx.out(answerText(answer.body));
      return exitCodes.ok;
    },
  };
}

/** `VM-7K2Q9  Cancelling · build #1 cancelling`: the request as the action left it. */
export function answerText(a: UpdateAnswer): string {
  const more = [...(a.build ? [`build #${a.build.attempt} ${a.build.state}`] : []), ...(a.builds_at ? [`builds at ${shortTime(a.builds_at)} UTC`] : []), ...(a.period_end ? [`ends ${shortTime(a.period_end)} UTC`] : [])];
  return `${a.serial}  ${[a.status, ...more].join(' · ')}`;
}

const withNote = (ctx: CliContext) => (ctx.flags.note === undefined ? {} : { note: checked('note', ctx.flags.note, flagSchemas.note) });

export const requestCommands: readonly Command[] = [
  list,
  show,
  submit,
  action('approve', 'approve a pending request (admin, operator)', ['note'], '[--note TEXT]', withNote),
  action('reject', 'reject a pending request, saying why (admin, operator)', ['reason'], '--reason TEXT', (ctx) => {
    if (ctx.flags.reason === undefined) throw usageError('reject needs --reason TEXT: the requester reads it on the timeline');
    return { reason: checked('reason', ctx.flags.reason, flagSchemas.reason) };
  }),
  action('cancel', 'cancel a request before or during its build (admin, operator)', ['note'], '[--note TEXT]', withNote),
  action('rebuild', 'build a failed request again (admin, operator)', ['note'], '[--note TEXT]', withNote),
  action('extend', 'move the end of the period', ['new-end', 'note'], '--new-end DATE [--note TEXT]', (ctx) => {
    const newEnd = ctx.flags['new-end'];
    if (newEnd === undefined) throw usageError('extend needs --new-end DATE: the new end of the period');
    const at = dateFlag('new-end', newEnd);
    if (Date.parse(at) <= Date.now()) throw usageError(`--new-end ${at} is in the past: a lease can only be moved to a later end`);
    return { new_end: at, ...withNote(ctx) };
  }),
  action('complete', 'end the request now: the VM and its VPN access are removed', ['note'], '[--note TEXT]', withNote),
];
