import { usageError } from '../cliError';
import type { Command } from '../command';
import { shortTime } from '../dates';
import { exitCodes } from '../exitCodes';
import { formatTable } from '../output/table';

interface ImageAnswer {
  name: string;
  os?: string;
  template_vmid: number;
  node: string;
  min_cores: number;
  min_memory_mib: number;
  min_disk_gib: number;
  orgs?: string[];
  default: boolean;
}

export const imagesCommand: Command = {
  words: ['images'],
  // `pveflow images` and `pveflow images list` are one command: the list is what most callers want.
  synopsis: '',
  summary: 'the images a request may name (--image), with their minimums, as the newest cluster sync saw the pool',
  flags: [],
  async run(ctx) {
    if (ctx.args.length) throw usageError(`unexpected argument: ${ctx.args.join(' ')}`);
    const answer = await ctx.api().get<{ synced_at: string; images: ImageAnswer[] }>('/api/images');
    if (ctx.json) return (ctx.out(answer.text), exitCodes.ok);
    const { synced_at, images } = answer.body;
    const withOrgs = images.some((i) => i.orgs);
    if (images.length) {
      ctx.out(
        formatTable(
          ['IMAGE', 'OS', 'TEMPLATE', 'MIN CORES', 'MIN MEMORY MiB', 'MIN DISK GiB', ...(withOrgs ? ['ORGS'] : [])],
          images.map((i) => [`${i.name}${i.default ? ' (default)' : ''}`, i.os ?? '', i.template_vmid, i.min_cores, i.min_memory_mib, i.min_disk_gib, ...(withOrgs ? [i.orgs?.join(', ') ?? 'all'] : [])]),
          { styled: ctx.styled },
        ),
      );
    } else ctx.err('no images offered');
    ctx.err(`(as of the cluster sync at ${shortTime(synced_at)} UTC)`);
    return exitCodes.ok;
  },
};

export const imagesListCommand: Command = { ...imagesCommand, words: ['images', 'list'] };
