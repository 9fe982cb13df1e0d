import { startTemporalCluster } from '../test/support/temporalCluster';

/**
 * The suite's Temporal cluster by hand: Temporal on PostgreSQL (test/support/temporalCluster.ts) with Temporal UI,
 * client certificates required as in production (a CA of its own, under its directory),
 * for running pveflow's API and workers as separate processes against it, as docs/operations.md describes. Prints
 * the commands it ran and the environment pveflow's processes need; Ctrl-C stops and removes all of it.
 *
 *   npm run install:temporal-cluster && npm run temporal-cluster
 *   TEMPORAL_NAMESPACE (default), TEMPORAL_CODEC_ENDPOINT (the API's /codec, e.g. http://127.0.0.1:3000/codec),
 *   and any other of the temporalio/ui image's TEMPORAL_* variables for the UI.
 */
void (async () => {
  const namespace = process.env.TEMPORAL_NAMESPACE || 'default';
  const cluster = await startTemporalCluster({ namespace, mtls: true });
  const uiEnv = Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => /^TEMPORAL_(UI|CODEC|CORS|CSRF|FORWARD)_/.test(e[0]) && e[1] !== undefined));
  const ui = await cluster.startUi({ codecEndpoint: process.env.TEMPORAL_CODEC_ENDPOINT, env: uiEnv });
  console.log(
    [
      'Ran:',
      ...cluster.commands.map((c) => `  ${c}`),
      '',
      `Temporal (gRPC)  ${cluster.address}, namespace ${namespace}; PostgreSQL on 127.0.0.1:${cluster.pgPort}`,
      `Temporal UI      ${ui.url}`,
      `Files and logs   ${cluster.dir}`,
      '',
      'For pveflow (npm run api, npm run worker):',
      `  export TEMPORAL_ADDRESS=${cluster.address} TEMPORAL_NAMESPACE=${namespace}`,
      ...Object.entries(cluster.clientEnv).map(([name, value]) => `  export ${name}=${value}`),
      '(the `temporal` CLI reads the same variables)',
      '',
      'Ctrl-C stops everything and removes the files.',
    ].join('\n'),
  );
  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await ui.stop();
    await cluster.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());
})().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
