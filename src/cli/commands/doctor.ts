import { usageError } from '../cliError';
import type { Command } from '../command';
import { exitCodes } from '../exitCodes';

export const doctorCommand: Command = {
  words: ['doctor'],
  synopsis: '',
  summary: 'check the real cluster, its nodes and NetBird from this environment (PVE_*, SSH_*, NETBIRD_*): not through the API',
  flags: [],
  async run(ctx) {
    if (ctx.args.length) throw usageError(`unexpected argument: ${ctx.args.join(' ')}`);
    // Loaded here: the worker's dependencies are heavy and no other command needs them.
    /* eslint-disable @typescript-eslint/no-require-imports */
    const { ConfigError, loadConfig } = require('../../config') as typeof import('../../config');
    const { formatFindings, runDoctor } = require('../../doctor/runDoctor') as typeof import('../../doctor/runDoctor');
    const { createActivityDeps } = require('../../worker') as typeof import('../../worker');
    /* eslint-enable @typescript-eslint/no-require-imports */
    // A setting missing or malformed is the operator's to fix, like a bad flag: exit 2 with the setting named.
    const configured = <T>(make: () => T): T => {
      try {
        return make();
      } catch (err) {
        if (err instanceof ConfigError) throw usageError(err.message);
        throw err;
      }
    };
    const config = configured(() => loadConfig());
    if (!config.PVE_ENDPOINT) throw usageError('PVE_ENDPOINT is not set: without it pveflow runs its simulated cluster, and there is nothing to check');
    const deps = configured(() => createActivityDeps(config));
    try {
      const findings = await runDoctor({ ...deps, token: { id: config.PVE_TOKEN_ID!, secret: config.PVE_TOKEN_SECRET! } });
      ctx.out(ctx.json ? JSON.stringify(findings) : formatFindings(findings));
      return findings.every((f) => f.ok) ? exitCodes.ok : exitCodes.refused;
    } finally {
      await Promise.allSettled([deps.pve.close(), deps.netbird.close()]);
    }
  },
};
