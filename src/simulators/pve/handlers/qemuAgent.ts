import type { ApiRequest, Route, SimContext } from '../context';
import type { RunState, VmState } from '../cluster';
import { PveError } from '../errors';
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

/** `POST .../agent`'s `command` enum (the schema validates it before this runs). */
function run(sim: SimContext, req: ApiRequest, command: string): { result: unknown } {
  const vmid = Number(req.params.req('vmid'));
  const { vm, run } = assertAgentAvailable(sim, req.params.req('node'), vmid);
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
];
