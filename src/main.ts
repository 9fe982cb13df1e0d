import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config';
import { bannerLines } from './embedded/banner';
import { GUEST_FORWARD_FORM, GUEST_FORWARD_OPTION, guestForwardsOf } from './embedded/guestForwardOption';
import { pveflowVersion } from './version';
import { startEmbeddedStack, type EmbeddedStack } from './embedded/stack';
import { createLogger } from './observability';
import { installSdkRuntime } from './observability/sdkMetrics';
import { realGuestPrerequisites } from './simulators/pve';

const USAGE = `usage: npm start [-- --reset-sim] [-- --real-guests [${GUEST_FORWARD_OPTION} ${GUEST_FORWARD_FORM}]...]

Runs pveflow with everything it needs on this machine; what is not configured (README, "A real cluster") is
simulated. The simulated world (VMs, snippets, VPN peers, tokens) is kept in DATA_DIR/sim across restarts.

  --reset-sim   forget the simulated world and start an empty one (requests in Temporal are kept; the next
                cluster sync reports the VMs they had as vanished)
  --real-guests the simulated Proxmox boots every started VM as a real Debian guest under QEMU (the image is
                built once by scripts/build-guest-image.sh; ~1 GB of memory and a minute or two of boot per VM)
  ${GUEST_FORWARD_OPTION} ${GUEST_FORWARD_FORM}
                with --real-guests, repeatable: the guests reach ADDRESS:PORT (10.0.2.0/24, their own network)
                and each connection runs COMMAND on this machine, e.g. a real NetBird for the guests:
                  NETBIRD_API_URL=... NETBIRD_TOKEN=... NETBIRD_MANAGEMENT_URL=http://10.0.2.100:33073 \\
                  npm start -- --real-guests ${GUEST_FORWARD_OPTION} '10.0.2.100:33073=socat - TCP:netbird.example.org:33073'
  --help        this text`;

/**
 * `npm start`: the whole system on this machine. With no real endpoints configured it runs on its embedded
 * default (Temporal dev server, simulated Proxmox VE, SFTP nodes and NetBird); Ctrl-C or SIGTERM stops all of it,
 * in order, and a signal that arrives while it starts stops it as soon as it is up.
 */
async function main(): Promise<void> {
  let args;
  try {
    args = parseArgs({
      options: {
        'reset-sim': { type: 'boolean', default: false },
        'real-guests': { type: 'boolean', default: false },
        'guest-forward': { type: 'string', multiple: true, default: [] },
        help: { type: 'boolean', default: false },
      },
      strict: true,
    }).values;
  } catch (err) {
    console.error(`[pveflow] ${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  const guestForwards = guestForwardsOf({ realGuests: args['real-guests'], forwards: args['guest-forward'] });
  if ('error' in guestForwards) {
    console.error(`[pveflow] ${guestForwards.error}\n\n${USAGE}`);
    process.exit(2);
  }
  if (args.help) {
    console.log(USAGE);
    return;
  }

  let stack: EmbeddedStack | undefined;
  let stopping = false;
  const stop = async (signal: string) => {
    console.log(`\n[pveflow] ${signal}: stopping…`);
    await stack!.stop();
    console.log('[pveflow] stopped');
    process.exit(0);
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return void console.log(`[pveflow] ${signal}: already stopping…`);
    stopping = true;
    if (stack) void stop(signal);
    else console.log(`\n[pveflow] ${signal}: stopping as soon as everything has started…`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  console.log(`[pveflow] ${pveflowVersion} starting…`);
  // The SDK's log lines through pveflow's logger (the bundler's report at debug), and no signal handler of its
  // own: the workers stop in this process's order, before the connections and servers they use.
  const initial = loadConfig();
  const sdkRuntime = {
    metrics: installSdkRuntime({
      logger: createLogger({ name: 'pveflow', level: initial.LOG_LEVEL }),
      metricsAddress: initial.TEMPORAL_SDK_METRICS_ADDRESS,
      shutdownSignals: [],
    }),
  };
  const realGuests = args['real-guests'] ? { image: guestImage(), guestForwards } : undefined;
  stack = await startEmbeddedStack({ resetSim: args['reset-sim'], sdkRuntime, realGuests });
  if (stopping) return stop('signal received while starting');
  console.log(describe(stack).join('\n'));
}

/** The guest image's folder: scripts/build-guest-image.sh builds it when its recipe changed, else names the cached one. */
function guestImage(): string {
  const reason = realGuestPrerequisites();
  if (reason) throw new Error(`--real-guests: ${reason}`);
  console.log('[pveflow] --real-guests: the guest image (scripts/build-guest-image.sh; the first build takes a few minutes)…');
  const build = spawnSync('bash', [join(__dirname, '..', 'scripts', 'build-guest-image.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (build.status !== 0) throw new Error(`--real-guests: scripts/build-guest-image.sh failed (exit ${build.status})`);
  return build.stdout.trim().split('\n').at(-1)!;
}

function describe(stack: EmbeddedStack): string[] {
  const c = stack.config;
  return bannerLines({
    version: pveflowVersion,
    apiUrl: stack.apiUrl,
    temporal: stack.temporal,
    pve: {
      endpoint: c.PVE_ENDPOINT ?? '',
      simulated: !!stack.world && !process.env.PVE_ENDPOINT,
      pool: c.PVE_POOL,
      templateVmid: c.PVE_TEMPLATE_VMID,
      caFile: c.PVE_CA_FILE,
    },
    sftpNodes: c.SSH_NODES ?? {},
    netbird: { url: c.NETBIRD_API_URL ?? '', simulated: !!stack.world && !process.env.NETBIRD_API_URL },
    webhook: !!c.WEBHOOK_SECRET,
    metricsUrls: stack.metricsUrls,
    metricsToken: !!c.METRICS_TOKEN,
    dataDir: c.DATA_DIR,
    ...(stack.world ? { world: { origin: stack.world.origin, accessFile: stack.world.accessFile, realGuestsDir: stack.world.realGuestsDir } } : {}),
  });
}

main().catch((err) => {
  // What went wrong, in a line; the stack only for whoever asked for debug output.
  const debug = process.env.LOG_LEVEL === 'debug';
  console.error(err instanceof ConfigError || !debug ? `[pveflow] could not start: ${(err as Error).message ?? err}` : err);
  process.exit(1);
});
