import type { RequestSummary } from '../../contracts/apiSchemas';
import { classIdSchema } from '../../domain/deviceRequest';
import { bounds, checked, flagSchemas, wholeNumber } from '../checks';
import { usageError } from '../cliError';
import type { Command } from '../command';
import type { CliContext } from '../context';
import { exitCodes } from '../exitCodes';
import { formatTable } from '../output/table';
import { submissionBody } from './requests';
import { choiceFlags } from './choiceFlags';

const base = '/api/classes';

interface ClassAnswer {
  class: string;
  requests: Array<{ serial: string; name?: string; status: string; build?: { attempt: number; state: string }; refused?: string }>;
}

function classIdArg(ctx: CliContext): string {
  const [id, ...rest] = ctx.args;
  if (!id) throw usageError('name the class: its id, e.g. CL-4H7QX');
  if (rest.length) throw usageError(`one class id only; unexpected: ${rest.join(' ')}`);
  const upper = id.toUpperCase();
  if (!classIdSchema.safeParse(upper).success) throw usageError(`"${id}" is not a class id (CL- and five letters or digits, e.g. CL-4H7QX)`);
  return upper;
}

function printMembers(ctx: CliContext, answer: ClassAnswer): void {
  ctx.out(`class ${answer.class}`);
  ctx.out(
    formatTable(
      ['SERIAL', 'NAME', 'STATUS', 'REFUSED'],
      answer.requests.map((r) => [r.serial, r.name, r.build ? `${r.status} · build #${r.build.attempt} ${r.build.state}` : r.status, r.refused]),
      { styled: ctx.styled },
    ),
  );
}

const submit: Command = {
  words: ['classes', 'new'],
  synopsis: '--count N [--idempotency-key KEY] [the flags of requests new]',
  summary: 'file a class: N identical VMs (a lab, an event), each its own request named <name>-01...',
  flags: ['count', 'idempotency-key', 'file', 'name', 'client', 'requester', 'consultant', 'start', 'end', ...choiceFlags, 'cores', 'memory-mib', 'full-clone', 'linked-clone', 'ssh-key'],
  async run(ctx) {
    if (ctx.args.length) throw usageError(`unexpected argument: ${ctx.args.join(' ')}`);
    if (ctx.flags.count === undefined) throw usageError(`--count N: how many identical VMs (${bounds.count.min}-${bounds.count.max})`);
    const count = wholeNumber('count', ctx.flags.count, bounds.count, 'how many identical VMs');
    const key = ctx.flags['idempotency-key'] === undefined ? undefined : checked('idempotency-key', ctx.flags['idempotency-key'], flagSchemas.idempotencyKey);
    const answer = await ctx.api().post<ClassAnswer>(base, { ...submissionBody(ctx, { className: true }), count }, key ? { 'idempotency-key': key } : {});
    if (ctx.json) return (ctx.out(answer.text), exitCodes.ok);
    printMembers(ctx, answer.body);
    return exitCodes.ok;
  },
};

const show: Command = {
  words: ['classes', 'show'],
  synopsis: '<class id>',
  summary: "a class's requests and their statuses",
  flags: [],
  async run(ctx) {
    const answer = await ctx.api().get<{ class: string; requests: RequestSummary[] }>(`${base}/${classIdArg(ctx)}`);
    if (ctx.json) return (ctx.out(answer.text), exitCodes.ok);
    ctx.out(`class ${answer.body.class}`);
    ctx.out(
      formatTable(
        ['SERIAL', 'NAME', 'STATUS', 'BUILD', 'NODE', 'VMID'],
        answer.body.requests.map((r) => [r.serial, r.name, r.status, r.build_status, r.node, r.vm_id]),
        {
          styled: ctx.styled,
        },
      ),
    );
    return exitCodes.ok;
  },
};

/** One action on every open request of the class; each answers for itself. Exit 1 when every one refused. */
function action(name: string, summary: string, flags: Command['flags'], synopsis: string, body: (ctx: CliContext) => Record<string, unknown>): Command {
  return {
    words: ['classes', name],
    synopsis: `<class id> ${synopsis}`.trim(),
    summary,
    flags,
    async run(ctx) {
      const id = classIdArg(ctx);
      const payload = body(ctx); // checked before anything is sent
      const answer = await ctx.api().post<ClassAnswer>(`${base}/${id}/${name}`, payload);
      if (ctx.json) ctx.out(answer.text);
      else printMembers(ctx, answer.body);
      return answer.body.requests.some((r) => r.refused) ? exitCodes.refused : exitCodes.ok;
    },
  };
}

const withNote = (ctx: CliContext) => (ctx.flags.note === undefined ? {} : { note: checked('note', ctx.flags.note, flagSchemas.note) });

export const classCommands: readonly Command[] = [
  submit,
  show,
  action('approve', 'approve every pending request of the class (admin, operator)', ['note'], '[--note TEXT]', withNote),
  action('reject', 'reject the class, saying why (admin, operator)', ['reason'], '--reason TEXT', (ctx) => {
    if (ctx.flags.reason === undefined) throw usageError('reject needs --reason TEXT: the requesters read it on the timeline');
    return { reason: checked('reason', ctx.flags.reason, flagSchemas.reason) };
  }),
  action('cancel', "cancel the class's builds (admin, operator)", ['note'], '[--note TEXT]', withNote),
  action('complete', 'end every request of the class now: VMs and VPN access are removed', ['note'], '[--note TEXT]', withNote),
];
