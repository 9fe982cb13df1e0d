import { ConfigError } from './config';
import { startEmbeddedStack, type EmbeddedStack } from './embedded/stack';

/**
 * `npm start`: the whole system on this machine. With no real endpoints configured it runs on its embedded
 * default (Temporal dev server, simulated Proxmox VE, SFTP nodes and NetBird); Ctrl-C stops all of it.
 */
async function main(): Promise<void> {
  console.log('[pveflow] starting…');
  const stack = await startEmbeddedStack();
  console.log(describe(stack));

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n[pveflow] ${signal}: stopping…`);
    await stack.stop();
    console.log('[pveflow] stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

function describe(stack: EmbeddedStack): string {
  const c = stack.config;
  const sim = (real: boolean) => (real ? '' : ' (simulated)');
  const lines = [
    '',
    'pveflow is running',
    `  API                 ${stack.apiUrl}  (POST /api/device_requests)`,
    stack.temporal.uiUrl ? `  Temporal UI         ${stack.temporal.uiUrl}  (find a request: Serial = "VM-XXXXX")` : undefined,
    `  Temporal            ${stack.temporal.address}  namespace ${stack.temporal.namespace}, task queue ${stack.temporal.taskQueue}`,
    `  Proxmox VE${sim(!stack.world || !!process.env.PVE_ENDPOINT).padEnd(10)}${c.PVE_ENDPOINT}  pool ${c.PVE_POOL}, template ${c.PVE_TEMPLATE_VMID}${c.PVE_CA_FILE ? `, CA ${c.PVE_CA_FILE}` : ''}`,
    `  SFTP to nodes       ${Object.entries(c.SSH_NODES ?? {}).map(([n, a]) => `${n}=${a.host}:${a.port}`).join(' ')}`,
    `  NetBird${sim(!stack.world || !!process.env.NETBIRD_API_URL).padEnd(13)}${c.NETBIRD_API_URL}`,
    `  Metrics             ${stack.metricsUrls.join('  ')}${c.METRICS_TOKEN ? '  (bearer METRICS_TOKEN)' : ''}`,
    `  Data                ${c.DATA_DIR}/`,
    '',
    'Ctrl-C stops everything.',
  ];
  return lines.filter((l) => l !== undefined).join('\n');
}

main().catch((err) => {
  console.error(err instanceof ConfigError ? `[pveflow] ${err.message}` : err);
  process.exit(1);
});
