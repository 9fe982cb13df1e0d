import type { TemplateInfo } from '../../contracts/types';
import { usageError } from '../cliError';
import type { Command } from '../command';
import { shortTime } from '../dates';
import { exitCodes } from '../exitCodes';
import { formatTable } from '../output/table';

export const templatesCommand: Command = {
  words: ['templates'],
  synopsis: '',
  summary: "the pool's templates, as the newest cluster sync saw them",
  flags: [],
  async run(ctx) {
    if (ctx.args.length) throw usageError(`unexpected argument: ${ctx.args.join(' ')}`);
    const answer = await ctx.api().get<{ synced_at: string; templates: TemplateInfo[] }>('/api/templates');
    if (ctx.json) return (ctx.out(answer.text), exitCodes.ok);
    const { synced_at, templates } = answer.body;
    if (templates.length) {
      ctx.out(
        formatTable(
          ['VMID', 'NAME', 'NODE', 'CORES', 'MEMORY MiB', 'DISK GiB'],
          templates.map((t) => [t.vmid, t.name, t.node, t.cores, t.memoryMiB, t.diskGiB]),
          { styled: ctx.styled },
        ),
      );
    } else ctx.err('no templates in the pool');
    ctx.err(`(as of the cluster sync at ${shortTime(synced_at)} UTC)`);
    return exitCodes.ok;
  },
};
