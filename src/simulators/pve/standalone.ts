import { randomBytes } from 'node:crypto';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { simulatorTls } from '../tls';
import { createPveSimulator, realisticTiming, zeroTiming, type PveTiming } from './index';
import type { ClusterSeed } from './seed';
import { loadSeedFile } from './seedFile';
import { generateSeed } from './seeds/generate';

/**
 * The simulated Proxmox VE cluster on its own, for anyone's Proxmox client:
 *
 *   npm run sim:pve -- --port 8006 --seed src/simulators/pve/seeds/three-nodes.json --state-out state.json
 *   npm run sim:pve -- --nodes 5 --vms 10000          (a generated cluster instead of a seed file)
 *
 * It serves HTTPS with a CA of its own (written to `<dir>/sim-ca.pem`), prints the API tokens (secrets the seed
 * left out are generated) and the control token, and writes its state to `--state-out` on SIGUSR2, on
 * `POST /_sim/state/save` and when it stops. The last line it prints is `PVE_SIM_READY <json>` for scripts.
 */
const USAGE = `usage: sim:pve [--port 8006] [--host 127.0.0.1] [--seed seed.json | --nodes N --vms M] [--state-out state.json]
               [--dir <folder for CA and snippets>] [--timing realistic|zero] [--control-token <secret>]`;

interface Args {
  port: number;
  host: string;
  seed?: string;
  nodes?: number;
  vms?: number;
  stateOut?: string;
  dir: string;
  timing: PveTiming;
  controlToken: string;
}

function parse(argv: string[]): Args {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string', default: '8006' },
      host: { type: 'string', default: '127.0.0.1' },
      seed: { type: 'string' },
      nodes: { type: 'string' },
      vms: { type: 'string' },
      'state-out': { type: 'string' },
      dir: { type: 'string' },
      timing: { type: 'string', default: 'realistic' },
      'control-token': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const int = (name: string, v: string | undefined) => {
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v)) throw new Error(`--${name} must be a whole number, got '${v}'`);
    return Number(v);
  };
  if (values.seed && (values.nodes || values.vms)) throw new Error('give either --seed or --nodes/--vms, not both');
  if (values.timing !== 'realistic' && values.timing !== 'zero') throw new Error(`--timing must be realistic or zero, got '${values.timing}'`);
  return {
    port: int('port', values.port) ?? 8006,
    host: values.host ?? '127.0.0.1',
    seed: values.seed,
    nodes: int('nodes', values.nodes),
    vms: int('vms', values.vms),
    stateOut: values['state-out'] ? resolve(values['state-out']) : undefined,
    dir: resolve(values.dir ?? join(tmpdir(), 'pveflow-pve-sim')),
    timing: values.timing === 'zero' ? zeroTiming : realisticTiming,
    controlToken: values['control-token'] ?? process.env.PVE_SIM_CONTROL_TOKEN ?? randomBytes(24).toString('base64url'),
  };
}

function seedOf(args: Args): { seed: ClusterSeed; secrets: Record<string, string> } {
  if (args.seed) {
    const { seed, generatedSecrets } = loadSeedFile(resolve(args.seed));
    return { seed, secrets: Object.fromEntries(seed.tokens.map((t) => [t.tokenid, generatedSecrets[t.tokenid] ?? '(as given in the seed)'])) };
  }
  const tokenSecret = randomBytes(16).toString('hex');
  const rootTokenSecret = randomBytes(16).toString('hex');
  const seed = generateSeed({ nodes: args.nodes ?? 3, vms: args.vms ?? 0, tokenSecret, rootTokenSecret });
  return { seed, secrets: Object.fromEntries(seed.tokens.map((t) => [t.tokenid, t.secret])) };
}

async function main(): Promise<void> {
  const args = parse(process.argv.slice(2));
  mkdirSync(args.dir, { recursive: true });
  const tls = await simulatorTls(args.dir);
  const { seed, secrets } = seedOf(args);

  let saveState = (): string => {
    throw new Error('not started');
  };
  const sim = createPveSimulator({
    seed,
    timing: args.timing,
    snippetsDir: (node, storage) => join(args.dir, 'nodes', node, storage, 'snippets'),
    storageDir: (storage, node) => join(args.dir, 'storage', storage, node ?? 'shared'),
    control: { token: args.controlToken, ...(args.stateOut ? { saveState: () => saveState() } : {}) },
  });
  saveState = () => {
    const path = args.stateOut ?? join(args.dir, 'state.json');
    // Written beside and renamed: a reader polling for the file never sees it half written.
    writeFileSync(`${path}.tmp`, `${JSON.stringify(sim.dump(), null, 2)}\n`);
    renameSync(`${path}.tmp`, path);
    return path;
  };
  const server = await sim.listen({ host: args.host, port: args.port, tls });
  const origin = new URL(server.url).origin;

  console.log(`Proxmox VE simulator: ${server.url} (${seed.nodes.length} nodes, ${seed.vms.length} VMs)`);
  console.log(`CA certificate: ${tls.caFile}`);
  for (const [tokenid, secret] of Object.entries(secrets)) console.log(`API token: PVEAPIToken=${tokenid}=${secret}`);
  console.log(`Control endpoint: ${origin}/_sim  (Authorization: Bearer ${args.controlToken})`);
  console.log(`State dump: kill -USR2 ${process.pid}  or  POST ${origin}/_sim/state/save  -> ${args.stateOut ?? join(args.dir, 'state.json')}`);
  console.log(`PVE_SIM_READY ${JSON.stringify({ url: server.url, port: server.port, caFile: tls.caFile, tokens: secrets, controlToken: args.controlToken, pid: process.pid })}`);

  process.on('SIGUSR2', () => console.log(`state written to ${saveState()}`));
  const stop = async () => {
    if (args.stateOut) saveState();
    await server.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

main().catch((err: unknown) => {
  console.error(`sim:pve: ${err instanceof Error ? err.message : String(err)}`);
  console.error(USAGE);
  process.exit(2);
});
