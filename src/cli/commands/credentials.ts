import type { Command } from '../command';
import { serialArg } from '../context';
import { exitCodes } from '../exitCodes';
import { formatFields } from '../output/table';

export const credentialsCommand: Command = {
  words: ['credentials'],
  synopsis: '<serial>',
  summary: "the VM's logins, once, to a consultant of the request (the key's email); nobody can ask again",
  flags: [],
  async run(ctx) {
    const serial = serialArg(ctx);
    const answer = await ctx.api().get<{ serial: string; username: string; password: string; root_password: string }>(`/api/device_requests/${serial}/credentials`);
    if (ctx.json) return (ctx.out(answer.text), exitCodes.ok);
    const c = answer.body;
    ctx.out(
      formatFields([
        ['Serial', c.serial],
        ['Username', c.username],
        ['Password', c.password],
        ['Root password', c.root_password],
      ]),
    );
    ctx.err('These are shown only this once: store them in your password manager now.');
    return exitCodes.ok;
  },
};
