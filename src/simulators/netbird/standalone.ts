import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { simulatorTls } from '../tls';
import { createNetbirdSimulator } from './index';

/**
 * The simulated NetBird management API on its own, for anyone's NetBird client (NetBird's Go REST client, the
 * Terraform provider, curl):
 *
 *   npm run sim:netbird -- --port 33073 --user owner@example.test --user alice@example.test
 *
 * It serves HTTPS with a CA of its own (written to `<dir>/sim-ca.pem`), prints the personal access token (sent as
 * `Authorization: Token <PAT>`, it acts as the first user, the owner) and the control token. Machines join through
 * the control endpoint (`POST /_sim/peers`), as a VM booting with a setup key would. The last line it prints is
 * `NETBIRD_SIM_READY <json>` for scripts.
 */
const USAGE = `usage: sim:netbird [--port 33073] [--host 127.0.0.1] [--dir <folder for the CA>] [--token <PAT>]
                   [--user email[:Name]]... [--control-token <secret>]`;

interface Args {
  port: number;
  host: string;
  dir: string;
  token: string;
  users: Array<{ email: string; name: string }>;
  controlToken: string;
}

function parse(argv: string[]): Args {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: 'string', default: '33073' },
      host: { type: 'string', default: '127.0.0.1' },
      dir: { type: 'string' },
      token: { type: 'string' },
      user: { type: 'string', multiple: true },
      'control-token': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  if (!/^\d+$/.test(values.port ?? '')) throw new Error(`--port must be a whole number, got '${values.port}'`);
  const users = (values.user?.length ? values.user : ['owner@netbird.example:NetBird Owner']).map((spec) => {
    const [email, ...name] = spec.split(':');
    if (!email || !/^[^@\s]+@[^@\s]+$/.test(email)) throw new Error(`--user needs an email (email[:Name]), got '${spec}'`);
    return { email, name: name.join(':') || email.split('@')[0]! };
  });
  return {
    port: Number(values.port),
    host: values.host ?? '127.0.0.1',
    dir: resolve(values.dir ?? join(tmpdir(), 'pveflow-netbird-sim')),
    token: values.token ?? process.env.NETBIRD_SIM_TOKEN ?? `nbp_${randomBytes(18).toString('base64url')}`,
    users,
    controlToken: values['control-token'] ?? process.env.NETBIRD_SIM_CONTROL_TOKEN ?? randomBytes(24).toString('base64url'),
  };
}

async function main(): Promise<void> {
  const args = parse(process.argv.slice(2));
  mkdirSync(args.dir, { recursive: true });
  const tls = await simulatorTls(args.dir);
  const sim = createNetbirdSimulator({ tokens: [args.token], users: args.users, control: { token: args.controlToken } });
  const server = await sim.listen({ host: args.host, port: args.port, tls: { key: tls.key, cert: tls.cert } });

  console.log(`NetBird management simulator: ${server.url}/api (${args.users.length} user${args.users.length === 1 ? '' : 's'}, owner ${args.users[0]!.email})`);
  console.log(`CA certificate: ${tls.caFile}`);
  console.log(`Personal access token: Authorization: Token ${args.token}`);
  console.log(`Control endpoint: ${server.url}/_sim  (Authorization: Bearer ${args.controlToken})`);
  console.log(`A machine joins: POST ${server.url}/_sim/peers {"setup_key": "...", "hostname": "..."}`);
  console.log(`NETBIRD_SIM_READY ${JSON.stringify({ url: server.url, port: server.port, caFile: tls.caFile, token: args.token, controlToken: args.controlToken, pid: process.pid })}`);

  const stop = async () => {
    await server.close();
    process.exit(0);
  };
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

main().catch((err: unknown) => {
  console.error(`sim:netbird: ${err instanceof Error ? err.message : String(err)}`);
  console.error(USAGE);
  process.exit(2);
});
