import { serialSchema } from '../../domain/deviceRequest';
import { migrateBody, OPERATION_ANSWER_WITHIN_MS, powerBody, reconfigureBody, snapshotBody, type operationAcceptedSchema, type operationAnswerSchema, type snapshotListSchema } from '../../contracts/vmOperationSchemas';
import type { z } from 'zod';
import { checked, flagSchemas, wholeNumber } from '../checks';
import { usageError } from '../cliError';
import type { Command } from '../command';
import type { CliContext } from '../context';
import { shortTime } from '../dates';
import { exitCodes } from '../exitCodes';
import { formatTable } from '../output/table';

/**
 * `pveflow vm ...`: the day-2 operations on a request's VM. Every flag is checked by the API's own schemas before
 * anything is sent; `--idempotency-key` makes a retry the same operation.
 */

type Answer = z.infer<typeof operationAnswerSchema>;
type Accepted = z.infer<typeof operationAcceptedSchema>;
const base = '/api/device_requests';
const POWER_ACTIONS = powerBody.shape.action.options;

/** `<serial> <word>...`: the serial first, checked for shape; then exactly the words the command takes. */
function serialAnd(ctx: CliContext, words: number, usage: string): { serial: string; rest: string[] } {
  const [serial, ...rest] = ctx.args;
  if (!serial) throw usageError(`name the request: ${usage}`);
  const upper = serial.toUpperCase();
  if (!serialSchema.safeParse(upper).success) throw usageError(`"${serial}" is not a request serial (VM- and five letters or digits, e.g. VM-7K2Q9)`);
  if (rest.length !== words) throw usageError(`expected: ${usage}`);
  return { serial: upper, rest };
}

const extras = (ctx: CliContext): { body: Record<string, unknown>; headers: Record<string, string> } => ({
  body: ctx.flags.note === undefined ? {} : { note: checked('note', ctx.flags.note, flagSchemas.note) },
  headers: ctx.flags['idempotency-key'] === undefined ? {} : { 'idempotency-key': checked('idempotency-key', ctx.flags['idempotency-key'], flagSchemas.idempotencyKey) },
});

/** `VM-7K2Q9  power shutdown: the guest shut down · stopped on pve2`. */
export function operationText(a: Answer): string {
  const where = [a.power, a.node ? `on ${a.node}` : undefined].filter(Boolean).join(' ');
  return `${a.serial}  ${a.operation.what}: ${a.operation.outcome ?? a.operation.state}${where ? ` · ${where}` : ''}`;
}

async function send(ctx: CliContext, method: 'POST' | 'DELETE', path: string, body: Record<string, unknown>, headers: Record<string, string>) {
  const api = ctx.api();
  const answer = method === 'POST' ? await api.post<Answer | Accepted>(path, body, headers, OPERATION_ANSWER_WITHIN_MS) : await api.delete<Answer | Accepted>(path, body, headers, OPERATION_ANSWER_WITHIN_MS);
  if (ctx.json) return (ctx.out(answer.text), exitCodes.ok);
  // 202: accepted and still running when the API stopped waiting; `pveflow requests show` shows it once it has ended.
  ctx.out('operation_id' in answer.body ? `${answer.body.serial}  still running: ${answer.body.detail}` : operationText(answer.body));
  return exitCodes.ok;
}

const power: Command = {
  words: ['vm', 'power'],
  synopsis: `<serial> ${POWER_ACTIONS.join('|')} [--note TEXT] [--idempotency-key KEY]`,
  summary: "start, shut down (graceful, stopped past the bound), reboot or stop the request's VM",
  flags: ['note', 'idempotency-key'],
  async run(ctx) {
    const { serial, rest } = serialAnd(ctx, 1, `pveflow vm power <serial> ${POWER_ACTIONS.join('|')}`);
    const action = checked('action', rest[0]!, powerBody.shape.action);
    const { body, headers } = extras(ctx);
    return send(ctx, 'POST', `${base}/${serial}/power`, { action, ...body }, headers);
  },
};

const resize: Command = {
  words: ['vm', 'resize'],
  synopsis: '<serial> [--cores N] [--memory-mib N] [--disk-gib N] [--confirm-reboot] [--note TEXT] [--idempotency-key KEY]',
  summary: 'change cores, memory or disk size: live where Proxmox hot-plugs it, else only with --confirm-reboot',
  flags: ['cores', 'memory-mib', 'disk-gib', 'confirm-reboot', 'note', 'idempotency-key'],
  async run(ctx) {
    const { serial } = serialAnd(ctx, 0, 'pveflow vm resize <serial> [--cores N] [--memory-mib N] [--disk-gib N]');
    const f = ctx.flags;
    const shape = reconfigureBody.shape;
    const number = (flag: 'cores' | 'memory-mib' | 'disk-gib', schema: z.ZodType, what: string) => {
      const v = f[flag];
      if (v === undefined) return undefined;
      const n = wholeNumber(flag, v, { min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }, what);
      const parsed = schema.safeParse(n);
      if (!parsed.success) throw usageError(`--${flag} ${v}: ${parsed.error.issues[0]?.message ?? 'out of range'} (${what})`);
      return n;
    };
    const cores = number('cores', shape.cores, 'CPU cores');
    const memory = number('memory-mib', shape.memory_mib, 'MiB of memory');
    const disk = number('disk-gib', shape.disk_gib, 'GiB of boot disk');
    if (cores === undefined && memory === undefined && disk === undefined) throw usageError('vm resize needs --cores, --memory-mib or --disk-gib: there is nothing to change');
    const { body, headers } = extras(ctx);
    return send(
      ctx,
      'POST',
      `${base}/${serial}/reconfigure`,
      {
        ...(cores !== undefined ? { cores } : {}),
        ...(memory !== undefined ? { memory_mib: memory } : {}),
        ...(disk !== undefined ? { disk_gib: disk } : {}),
        ...(f['confirm-reboot'] ? { confirm_reboot: true } : {}),
        ...body,
      },
      headers,
    );
  },
};

const snapshot: Command = {
  words: ['vm', 'snapshot'],
  synopsis: '<serial> list | create <name> [--with-ram] [--description TEXT] | revert <name> | delete <name>  [--note TEXT] [--idempotency-key KEY]',
  summary: "the request's snapshots: list them, take one (with the guest's memory), revert to one, delete one",
  flags: ['with-ram', 'description', 'note', 'idempotency-key'],
  async run(ctx) {
    const action = ctx.args[1];
    if (action === 'list') {
      const { serial } = serialAnd(ctx, 1, 'pveflow vm snapshot <serial> list');
      const answer = await ctx.api().get<z.infer<typeof snapshotListSchema>>(`${base}/${serial}/snapshots`);
      if (ctx.json) return (ctx.out(answer.text), exitCodes.ok);
      const { snapshots, limit } = answer.body;
      if (!snapshots.length) ctx.err(`no snapshots (at most ${limit})`);
      else {
        ctx.out(
          formatTable(
            ['NAME', 'TAKEN (UTC)', 'BY', 'RAM', 'DESCRIPTION'],
            snapshots.map((s) => [s.name, shortTime(s.taken_at), s.by, s.with_ram ? 'yes' : 'no', s.description]),
            { styled: ctx.styled },
          ),
        );
        ctx.err(`${snapshots.length} of at most ${limit}`);
      }
      return exitCodes.ok;
    }
    if (action !== 'create' && action !== 'revert' && action !== 'delete') throw usageError('vm snapshot needs one of: list, create <name>, revert <name>, delete <name>');
    const { serial, rest } = serialAnd(ctx, 2, `pveflow vm snapshot <serial> ${action} <name>`);
    const name = checked('name', rest[1]!, snapshotBody.shape.name);
    if (action !== 'create' && (ctx.flags['with-ram'] || ctx.flags.description !== undefined)) throw usageError(`--with-ram and --description are for create, not ${action}`);
    const { body, headers } = extras(ctx);
    if (action === 'create') {
      const description = ctx.flags.description === undefined ? undefined : checked('description', ctx.flags.description, snapshotBody.shape.description);
      return send(ctx, 'POST', `${base}/${serial}/snapshots`, { name, ...(ctx.flags['with-ram'] ? { with_ram: true } : {}), ...(description ? { description } : {}), ...body }, headers);
    }
    const at = `${base}/${serial}/snapshots/${encodeURIComponent(name)}`;
    return action === 'revert' ? send(ctx, 'POST', `${at}/revert`, body, headers) : send(ctx, 'DELETE', at, body, headers);
  },
};

const migrate: Command = {
  words: ['vm', 'migrate'],
  synopsis: '<serial> --target NODE [--note TEXT] [--idempotency-key KEY]',
  summary: 'move the VM to another node, online when it runs; its cloud-init snippet follows (operators)',
  flags: ['target', 'note', 'idempotency-key'],
  async run(ctx) {
    const { serial } = serialAnd(ctx, 0, 'pveflow vm migrate <serial> --target NODE');
    if (ctx.flags.target === undefined) throw usageError('vm migrate needs --target NODE: the node to move the VM to');
    const target = checked('target', ctx.flags.target, migrateBody.shape.target);
    const { body, headers } = extras(ctx);
    return send(ctx, 'POST', `${base}/${serial}/migrate`, { target, ...body }, headers);
  },
};

export const vmCommands: readonly Command[] = [power, resize, snapshot, migrate];
