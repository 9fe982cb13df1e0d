import { usageError } from '../cliError';
import type { Command } from '../command';
import { exitCodes } from '../exitCodes';

export const doctorCommand: Command = {
  words: ['doctor'],
  synopsis: '',
  summary:
    'check the cluster, its nodes and NetBird from this environment (PVE_*, SSH_*, NETBIRD_*); without PVE_ENDPOINT, the simulated world of npm start (DATA_DIR/sim/credentials.env). With an API URL and key (PVEFLOW_API_URL, PVEFLOW_API_KEY), the catalogue’s images (imported ones too) are read from the API and their templates checked',
  flags: [],
  async run(ctx) {
    if (ctx.args.length) throw usageError(`unexpected argument: ${ctx.args.join(' ')}`);
    // The one entry point of the doctor (the worker runs the same checks at start-up). The doctor takes its clients
    // from the composition root (worker.ts) and never imports it: loaded here, as the worker's dependencies are heavy
    // and no other command needs them.
    /* eslint-disable @typescript-eslint/no-require-imports */
    const { ConfigError, loadConfig } = require('../../config') as typeof import('../../config');
    const { formatFindings, runDoctor } = require('../../doctor/runDoctor') as typeof import('../../doctor/runDoctor');
    const { doctorEnvironment, simulatedWorldHint } = require('../../doctor/environment') as typeof import('../../doctor/environment');
    const { doctorCatalogueSettings, withListedImages } = require('../../doctor/catalogueSettings') as typeof import('../../doctor/catalogueSettings');
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
    const { env, worldFile } = configured(() => doctorEnvironment(process.env));
    const config = configured(() => loadConfig(env));
    const deps = configured(() => createActivityDeps(config));
    try {
      if (worldFile && !ctx.json) ctx.err(simulatedWorldHint(worldFile));
      let catalogue = configured(() => doctorCatalogueSettings(config));
      const apiFindings: Array<import('../../doctor/finding').Finding> = [];
      // The images imported through the API live in the catalogue's workflow, not in this environment: read through
      // the API when one is named with a key (the doctor itself holds no Temporal connection).
      if ((ctx.flags['api-url'] ?? ctx.env.PVEFLOW_API_URL) && (ctx.flags['api-key'] ?? ctx.env.PVEFLOW_API_KEY)) {
        try {
          const listed = await ctx.api().get<{ images: Array<import('../../doctor/catalogueSettings').ListedImage> }>('/api/images');
          catalogue = withListedImages(catalogue, listed.body.images);
          apiFindings.push({ check: 'api.images', ok: true, message: `${listed.body.images.length} image(s) listed by ${ctx.apiUrl()}` });
        } catch (err) {
          apiFindings.push({
            check: 'api.images',
            ok: false,
            message: `cannot read the image catalogue from ${ctx.apiUrl()}: ${(err as Error).message}; only the configured images (PVEFLOW_IMAGES) were checked`,
            fix: 'check PVEFLOW_API_URL and PVEFLOW_API_KEY (a key that may read images), or unset them to check the configuration alone',
          });
        }
      }
      const findings = [...apiFindings, ...(await runDoctor({ ...deps, settings: { ...deps.settings, ...catalogue }, token: { id: config.PVE_TOKEN_ID!, secret: config.PVE_TOKEN_SECRET! } }))];
      const passed = findings.every((f) => f.ok);
      ctx.out(ctx.json ? JSON.stringify(findings) : formatFindings(findings));
      if (worldFile && !ctx.json && !passed) ctx.err(simulatedWorldHint(worldFile, true));
      return passed ? exitCodes.ok : exitCodes.refused;
    } finally {
      await Promise.allSettled([deps.pve.close(), deps.netbird.close()]);
    }
  },
};
