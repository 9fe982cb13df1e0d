import type { Command } from '../command';
import { serialArg } from '../context';
import { exitCodes } from '../exitCodes';
import { shortTime } from '../dates';
import { formatFields } from '../output/table';

export const credentialsCommand: Command = {
  words: ['credentials'],
  synopsis: '<serial>',
  summary: "the VM's logins, to a consultant of the request (the key's email); again only by them, within minutes",
  flags: [],
  async run(ctx) {
    const serial = serialArg(ctx);
    const answer = await ctx
      .api()
      .get<{ serial: string; username: string; password: string; root_password: string; revealed_to: string; revealed_at: string; refetchable_until?: string }>(`/api/device_requests/${serial}/credentials`);
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
    const held = c.refetchable_until ? `${c.serial} holds them for you until ${shortTime(c.refetchable_until)} UTC, then shreds them` : `${c.serial} no longer holds them`;
    ctx.err(`Handed to ${c.revealed_to} at ${shortTime(c.revealed_at)} UTC; ${held}: store them in your password manager now.`);
    return exitCodes.ok;
  },
};
