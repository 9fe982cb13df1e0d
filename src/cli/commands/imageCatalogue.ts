import { setTimeout as sleep } from 'node:timers/promises';
import { usageError } from '../cliError';
import type { Command } from '../command';
import type { CliContext } from '../context';
import { exitCodes } from '../exitCodes';
import { formatTable } from '../output/table';

/**
 * The catalogue's own commands (operators): show one image, import one from a URL (and watch it), update its
 * minimums, orgs and description, retire and delete it, and follow or cancel an import. The API checks everything;
 * these only shape the flags into its bodies.
 */
interface ImportStatus {
  name: string;
  state: string;
  stage: string;
  bytes?: number;
  total_bytes?: number;
  template_vmid?: number;
  error?: string;
  leftovers: string[];
  log: Array<{ at: string; stage: string; message: string }>;
}

const base = '/api/images';
const nameArg = (ctx: CliContext, what: string) => {
  const [name, ...rest] = ctx.args;
  if (!name || rest.length) throw usageError(`${what} takes one image name`);
  return encodeURIComponent(name);
};
const number = (v: string | undefined) => (v === undefined ? undefined : Number(v));
/** The minimums, orgs and description flags as the API's fields (absent flags: absent fields). */
function imageFields(ctx: CliContext): Record<string, unknown> {
  const f = ctx.flags;
  if (f.orgs !== undefined && f['all-orgs']) throw usageError('--orgs or --all-orgs, not both');
  return Object.fromEntries(
    Object.entries({
      description: f.description,
      min_cores: number(f['min-cores']),
      min_memory_mib: number(f['min-memory-mib']),
      min_disk_gib: number(f['min-disk-gib']),
      orgs: f['all-orgs'] ? null : f.orgs?.split(',').map((o) => o.trim()),
    }).filter(([, v]) => v !== undefined),
  );
}
const progressLine = (s: ImportStatus) => `${s.name}: ${s.state} at ${s.stage}${s.bytes !== undefined ? `, ${s.bytes}${s.total_bytes ? ` of ${s.total_bytes}` : ''} bytes` : ''}${s.error ? ` — ${s.error}` : ''}`;

/** An item of a list field: an org as it is, a template per node (`templates`) as `<vmid> on <node>`. */
const listItem = (item: unknown) => {
  if (typeof item !== 'object' || item === null) return String(item);
  const { vmid, node } = item as { vmid?: unknown; node?: unknown };
  return vmid !== undefined && node !== undefined ? `${String(vmid)} on ${String(node)}` : JSON.stringify(item);
};

export const imageShowCommand: Command = {
  words: ['images', 'show'],
  synopsis: '<name>',
  summary: 'one catalogue image: its template, minimums, orgs, whether it is retired',
  flags: [],
  async run(ctx) {
    const answer = await ctx.api().get<Record<string, unknown>>(`${base}/${nameArg(ctx, 'images show')}`);
    if (ctx.json) return (ctx.out(answer.text), exitCodes.ok);
    ctx.out(
      formatTable(
        ['FIELD', 'VALUE'],
        Object.entries(answer.body).map(([k, v]) => [k, Array.isArray(v) ? v.map(listItem).join(', ') : String(v)]),
        { styled: ctx.styled },
      ),
    );
    return exitCodes.ok;
  },
};

export const imageImportCommand: Command = {
  words: ['images', 'import'],
  synopsis: '--name NAME --os OS (--url URL --checksum HEX --checksum-algorithm sha256 | --volume STORAGE:import/FILE) [--wait]',
  summary: 'import a cloud image as a template into the catalogue (operators); --wait follows it to the end',
  flags: ['name', 'os', 'url', 'checksum', 'checksum-algorithm', 'volume', 'node', 'download-storage', 'disk-storage', 'min-cores', 'min-memory-mib', 'min-disk-gib', 'orgs', 'description', 'wait'],
  async run(ctx) {
    if (ctx.args.length) throw usageError(`unexpected argument: ${ctx.args.join(' ')}`);
    const f = ctx.flags;
    if (!f.name || !f.os) throw usageError('--name and --os are required');
    const body = Object.fromEntries(
      Object.entries({
        name: f.name,
        os: f.os,
        url: f.url,
        checksum: f.checksum,
        checksum_algorithm: f['checksum-algorithm'],
        volume: f.volume,
        node: f.node,
        download_storage: f['download-storage'],
        disk_storage: f['disk-storage'],
        ...imageFields(ctx),
      }).filter(([, v]) => v !== undefined),
    );
    const started = await ctx.api().post<{ name: string; status_url: string }>(base, body);
    if (!f.wait) {
      if (ctx.json) ctx.out(started.text);
      else ctx.out(`importing ${started.body.name}: pveflow images import-status ${started.body.name}`);
      return exitCodes.ok;
    }
    return follow(ctx, started.body.status_url);
  },
};

/** Polls the import's status until it ends, printing each new log line; exits non-zero unless it completed. */
async function follow(ctx: CliContext, statusUrl: string) {
  let seen = 0;
  for (;;) {
    const status = (await ctx.api().get<ImportStatus>(statusUrl)).body;
    for (const line of status.log.slice(seen)) ctx.err(`${line.at} ${line.stage}: ${line.message}`);
    seen = status.log.length;
    if (!['running', 'cancelling'].includes(status.state)) {
      if (ctx.json) ctx.out(JSON.stringify(status));
      else ctx.out(progressLine(status));
      return status.state === 'completed' ? exitCodes.ok : exitCodes.refused;
    }
    await sleep(2_000);
  }
}

export const imageImportStatusCommand: Command = {
  words: ['images', 'import-status'],
  synopsis: '<name> [--wait]',
  summary: "an import's stage, bytes and log; --wait follows it to the end",
  flags: ['wait'],
  async run(ctx) {
    const url = `/api/image-imports/${nameArg(ctx, 'images import-status')}`;
    if (ctx.flags.wait) return follow(ctx, url);
    const answer = await ctx.api().get<ImportStatus>(url);
    if (ctx.json) return (ctx.out(answer.text), exitCodes.ok);
    for (const line of answer.body.log) ctx.out(`${line.at} ${line.stage}: ${line.message}`);
    ctx.out(progressLine(answer.body));
    return exitCodes.ok;
  },
};

export const imageImportCancelCommand: Command = {
  words: ['images', 'cancel-import'],
  synopsis: '<name>',
  summary: 'cancel a running import: what it made is removed',
  flags: [],
  async run(ctx) {
    const answer = await ctx.api().delete(`/api/image-imports/${nameArg(ctx, 'images cancel-import')}`);
    ctx.out(ctx.json ? answer.text : 'cancelling: pveflow images import-status <name> shows it end');
    return exitCodes.ok;
  },
};

export const imageUpdateCommand: Command = {
  words: ['images', 'update'],
  synopsis: '<name> [--min-cores N] [--min-memory-mib N] [--min-disk-gib N] [--orgs A,B | --all-orgs] [--description TEXT]',
  summary: "change an image's minimums, orgs or description (new requests only)",
  flags: ['min-cores', 'min-memory-mib', 'min-disk-gib', 'orgs', 'all-orgs', 'description'],
  async run(ctx) {
    const answer = await ctx.api().patch(`${base}/${nameArg(ctx, 'images update')}`, imageFields(ctx));
    ctx.out(ctx.json ? answer.text : 'updated');
    return exitCodes.ok;
  },
};

export const imageRetireCommand: Command = {
  words: ['images', 'retire'],
  synopsis: '<name>',
  summary: 'offer an image to no new request; running ones keep their VM',
  flags: [],
  async run(ctx) {
    const answer = await ctx.api().post(`${base}/${nameArg(ctx, 'images retire')}/retire`, undefined);
    ctx.out(ctx.json ? answer.text : 'retired');
    return exitCodes.ok;
  },
};

export const imageDeleteCommand: Command = {
  words: ['images', 'delete'],
  synopsis: '<name>',
  summary: 'delete an image from the catalogue (refused while a request uses it)',
  flags: [],
  async run(ctx) {
    await ctx.api().delete(`${base}/${nameArg(ctx, 'images delete')}`);
    if (!ctx.json) ctx.out('deleted');
    return exitCodes.ok;
  },
};

export const imageCatalogueCommands: readonly Command[] = [imageShowCommand, imageImportCommand, imageImportStatusCommand, imageImportCancelCommand, imageUpdateCommand, imageRetireCommand, imageDeleteCommand];
