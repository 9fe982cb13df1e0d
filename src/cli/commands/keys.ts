import type { ApiKeyWire } from '../../contracts/apiKeySchemas';
import { usageError } from '../cliError';
import type { Command } from '../command';
import { dateFlag, shortTime } from '../dates';
import { exitCodes } from '../exitCodes';
import { formatTable } from '../output/table';

/**
 * `pveflow keys`: API keys issued and revoked at run time (/api/api_keys). The new key is printed once, on stdout
 * alone, so that `pveflow keys create ... > key` captures it and nothing else; the API keeps only its hash.
 */
const create: Command = {
  words: ['keys', 'create'],
  synopsis: '--name NAME --role requester|admin|operator [--org ORG] [--email EMAIL] [--expires DATE|+<n>d]',
  summary: 'issue an API key (shown once): operators any, admins requester and admin keys of their org',
  flags: ['name', 'role', 'org', 'email', 'expires'],
  async run(ctx) {
    if (ctx.args.length) throw usageError(`unexpected argument: ${ctx.args.join(' ')}`);
    const f = ctx.flags;
    if (!f.name) throw usageError('--name is required: what the key is for');
    if (!f.role) throw usageError('--role is required: requester, admin or operator');
    const body = {
      name: f.name,
      role: f.role,
      ...(f.org !== undefined ? { org: f.org } : {}),
      ...(f.email !== undefined ? { email: f.email } : {}),
      ...(f.expires !== undefined ? { expires_at: dateFlag('expires', f.expires) } : {}),
    };
    const answer = await ctx.api().post<ApiKeyWire & { key: string }>('/api/api_keys', body);
    if (ctx.json) return (ctx.out(answer.text), exitCodes.ok);
    const k = answer.body;
    ctx.out(k.key);
    ctx.err(`issued ${k.id} (${k.role}${k.org ? ` of ${k.org}` : ''}${k.expires_at ? `, expires ${shortTime(k.expires_at)} UTC` : ''}): the key above is shown this once, keep it now`);
    return exitCodes.ok;
  },
};

const list: Command = {
  words: ['keys', 'list'],
  synopsis: '',
  summary: 'the API keys you may manage, with who issued them and their last use',
  flags: [],
  async run(ctx) {
    if (ctx.args.length) throw usageError(`unexpected argument: ${ctx.args.join(' ')}`);
    const answer = await ctx.api().get<{ items: ApiKeyWire[] }>('/api/api_keys');
    if (ctx.json) return (ctx.out(answer.text), exitCodes.ok);
    const items = answer.body.items;
    if (!items.length) return (ctx.err('no API keys you may see'), exitCodes.ok);
    ctx.out(
      formatTable(
        ['ID', 'NAME', 'ROLE', 'ORG', 'EMAIL', 'SOURCE', 'OWNER', 'EXPIRES', 'LAST USED'],
        items.map((k) => [
          k.id,
          k.name,
          k.role,
          k.org ?? '',
          k.email ?? '',
          k.source,
          k.owner ?? '',
          k.expires_at ? `${shortTime(k.expires_at)}${k.expired ? ' (expired)' : ''}` : 'never',
          shortTime(k.last_used_at) ?? '-',
        ]),
        { styled: ctx.styled },
      ),
    );
    return exitCodes.ok;
  },
};

const revoke: Command = {
  words: ['keys', 'revoke'],
  synopsis: '<id>',
  summary: 'revoke an API key: every API process refuses it within seconds',
  flags: [],
  async run(ctx) {
    const [id, ...rest] = ctx.args;
    if (!id) throw usageError('name the key: its id, e.g. key-0f3a9c2e71d4b658 (see pveflow keys list)');
    if (rest.length) throw usageError(`one id only; unexpected: ${rest.join(' ')}`);
    const answer = await ctx.api().delete<ApiKeyWire>(`/api/api_keys/${encodeURIComponent(id)}`);
    if (ctx.json) return (ctx.out(answer.text), exitCodes.ok);
    ctx.out(`revoked ${answer.body.id} (${answer.body.name})`);
    return exitCodes.ok;
  },
};

export const keyCommands: readonly Command[] = [create, list, revoke];
