import type { ApiRequest, Route, SimContext } from '../context';
import type { RunState, VmState } from '../cluster';
import { PveError, paramError } from '../errors';
import { assertAgentAvailable, networkInterfaces } from '../guestAgent';

/**
 * The guest agent's read commands beyond ping and network-get-interfaces (qemu-server `API2/Qemu/Agent.pm`): each
 * has its own `GET .../agent/<command>` endpoint, and `POST .../agent` runs any of them by name. All of them first
 * pass `assert_agent_available` (no agent configured, VM not running, agent not answering: PVE's own errors) and
 * answer `{result: ...}` as qemu-ga does. Commands that would change the guest (shutdown, suspend, fsfreeze, fstrim)
 * are not simulated: they fail the way a qemu-ga that rejects the command fails, naming the simulator.
 */
const vmPerm =
  (privs: string[], any = false) =>
  ({ identity, params }: ApiRequest, sim: SimContext) =>
    sim.perms.check(identity, `/vms/${params.str('vmid')}`, privs, any);

/** PVE 9's split of the old VM.Monitor (qemu-server b92a40ce): read commands need Audit or Unrestricted. */
const AUDIT = ['VM.GuestAgent.Audit', 'VM.GuestAgent.Unrestricted'];

type Reader = (sim: SimContext, vm: VmState, run: RunState) => unknown;

/** What a Debian 12 cloud image's (or a Windows guest's) qemu-ga answers. */
function osInfo(vm: VmState): Record<string, string> {
  if (/^(win|wxp|w2k)/.test(vm.config.ostype ?? '')) {
    return {
      id: 'mswindows',
      name: 'Microsoft Windows',
      'pretty-name': 'Windows Server 2022 Standard',
      version: 'Microsoft Windows Server 2022',
      'version-id': '2022',
      'kernel-release': '20348',
      'kernel-version': '10.0',
      machine: 'x86_64',
      variant: 'server',
      'variant-id': 'server',
    };
  }
  return {
    id: 'debian',
    name: 'Debian GNU/Linux',
    'pretty-name': 'Debian GNU/Linux 12 (bookworm)',
    version: '12 (bookworm)',
    'version-id': '12',
    'kernel-release': '6.1.0-28-cloud-amd64',
    'kernel-version': '#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)',
    machine: 'x86_64',
  };
}

const READERS: Record<string, Reader> = {
  ping: () => ({}),
  'get-osinfo': (_sim, vm) => osInfo(vm),
  // The name cloud-init gave the guest at boot (its `hostname`/`fqdn`, else PVE's meta-data: the VM name).
  'get-host-name': (_sim, vm, run) => ({ 'host-name': run.hostName ?? vm.config.name ?? `VM${vm.vmid}` }),
  'network-get-interfaces': (sim, vm, run) => networkInterfaces(sim, vm, run),
  'get-time': () => Date.now() * 1_000_000,
  'get-timezone': () => ({ zone: 'UTC', offset: 0 }),
  'get-vcpus': (_sim, vm) =>
    Array.from({ length: Number(vm.config.cores ?? 1) * Number(vm.config.sockets ?? 1) }, (_, i) => ({
      'logical-id': i,
      online: true,
      'can-offline': i > 0,
    })),
  'get-users': () => [],
  'fsfreeze-status': () => 'thawed',
  info: () => ({
    version: '7.2.15',
    supported_commands: Object.keys(READERS).map((name) => ({ name: `guest-${name}`, enabled: true, 'success-response': true })),
  }),
};

/** Real-guest mode: the command goes to the guest's own qemu-ga; its failures read as PVE's. */
export async function realAgentCall(sim: SimContext, vm: VmState, command: string, args?: Record<string, unknown>): Promise<unknown> {
  try {
    return await sim.realGuests!.agent(vm.vmid, command, args);
  } catch (err) {
    throw new PveError(500, (err as Error).message);
  }
}

/** `POST .../agent`'s `command` enum (the schema validates it before this runs). */
async function run(sim: SimContext, req: ApiRequest, command: string): Promise<{ result: unknown }> {
  const vmid = Number(req.params.req('vmid'));
  const { vm, run } = assertAgentAvailable(sim, req.params.req('node'), vmid);
  if (sim.realGuests?.running(vmid)) return { result: await realAgentCall(sim, vm, command) };
  const reader = READERS[command];
  if (!reader) {
    throw new PveError(500, `VM ${vmid} qga command 'guest-${command}' failed - the simulated guest agent does not implement it`);
  }
  return { result: reader(sim, vm, run) };
}

const readRoute = (command: string): Route => ({
  method: 'GET',
  path: `/nodes/{node}/qemu/{vmid}/agent/${command}`,
  permission: vmPerm(AUDIT, true),
  handle: (req, sim) => run(sim, req, command),
});

/** exec, exec-status and file-read reach into the guest: only a real guest has anything to answer with. */
function realGuestOnly(sim: SimContext, req: ApiRequest, command: string): VmState {
  const vmid = Number(req.params.req('vmid'));
  const { vm } = assertAgentAvailable(sim, req.params.req('node'), vmid);
  if (!sim.realGuests?.running(vmid)) {
    throw new PveError(500, `VM ${vmid} qga command 'guest-${command}' failed - the simulated guest agent does not implement it (only real guests run commands)`);
  }
  return vm;
}

const UNRESTRICTED = ['VM.GuestAgent.Unrestricted'];

/** `POST .../agent/exec`: `command` is the program and its arguments (a JSON array, or repeated form values). */
const execRoute: Route = {
  method: 'POST',
  path: '/nodes/{node}/qemu/{vmid}/agent/exec',
  permission: vmPerm(UNRESTRICTED),
  handle: async (req, sim) => {
    const vm = realGuestOnly(sim, req, 'exec');
    const raw = req.params.req('command');
    let argv: unknown;
    try {
      argv = raw.startsWith('[') ? JSON.parse(raw) : [raw];
    } catch {
      argv = undefined;
    }
    if (!Array.isArray(argv) || argv.length === 0 || !argv.every((a) => typeof a === 'string')) throw paramError({ command: "type check ('array') failed" });
    const [path, ...arg] = argv as string[];
    const input = req.params.str('input-data');
    return realAgentCall(sim, vm, 'exec', { path, arg, 'capture-output': true, ...(input !== undefined ? { 'input-data': Buffer.from(input).toString('base64') } : {}) });
  },
};

/** `GET .../agent/exec-status`: PVE decodes the captured output from base64. */
const execStatusRoute: Route = {
  method: 'GET',
  path: '/nodes/{node}/qemu/{vmid}/agent/exec-status',
  permission: vmPerm(UNRESTRICTED),
  handle: async (req, sim) => {
    const vm = realGuestOnly(sim, req, 'exec-status');
    const status = (await realAgentCall(sim, vm, 'exec-status', { pid: req.params.int('pid') })) as Record<string, unknown>;
    for (const key of ['out-data', 'err-data']) {
      if (typeof status[key] === 'string') status[key] = Buffer.from(status[key], 'base64').toString('utf8');
    }
    return status;
  },
};

/** `GET .../agent/file-read`: open, read up to `count` bytes, close; decoded unless `decode=0`. */
const fileReadRoute: Route = {
  method: 'GET',
  path: '/nodes/{node}/qemu/{vmid}/agent/file-read',
  permission: vmPerm(['VM.GuestAgent.FileRead', ...UNRESTRICTED]),
  handle: async (req, sim) => {
    const vm = realGuestOnly(sim, req, 'file-read');
    const count = req.params.int('count') ?? 16 * 1024 * 1024;
    const handle = await realAgentCall(sim, vm, 'file-open', { path: req.params.req('file'), mode: 'r' });
    try {
      const read = (await realAgentCall(sim, vm, 'file-read', { handle, count })) as { 'buf-b64': string; count: number; eof: boolean };
      const content = req.params.bool('decode') === false ? read['buf-b64'] : Buffer.from(read['buf-b64'], 'base64').toString('utf8');
      return { content, 'bytes-read': read.count, ...(read.eof ? {} : { truncated: true }) };
    } finally {
      await realAgentCall(sim, vm, 'file-close', { handle }).catch(() => undefined);
    }
  },
};

export const agentRoutes: Route[] = [
  // The other read commands have GET endpoints too; the simulator serves them through `POST .../agent` only.
  readRoute('get-osinfo'),
  readRoute('get-host-name'),
  {
    method: 'POST',
    path: '/nodes/{node}/qemu/{vmid}/agent',
    // The generic endpoint can run commands that change the guest, so PVE 9 asks for the unrestricted privilege.
    permission: vmPerm(['VM.GuestAgent.Unrestricted']),
    handle: (req, sim) => run(sim, req, req.params.req('command')),
  },
  execRoute,
  execStatusRoute,
  fileReadRoute,
];
