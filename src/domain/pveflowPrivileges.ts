import { configKeyPrivilege } from './pveConfigPrivileges';

// No zod here, no Node built-ins: activities, the doctor and tests import this; nothing in it touches the world.

/**
 * The Proxmox VE privileges pveflow's token needs, written once, from the calls a build and a completion make
 * (proxmox-behaviour.md §4: where each call is checked, §4.9.1: which privilege each config key needs). The doctor
 * checks exactly these (src/doctor/privileges.ts), docs/operations.md's role is `pveflowRole()` (a test compares
 * them), and a failed call names what it needed from here.
 */

/** The config keys `configureVm` sends (besides `digest`): the configuring stage's privileges derive from them. */
export const CONFIGURE_KEYS = ['cores', 'sockets', 'memory', 'agent', 'net0', 'ipconfig0', 'cicustom', 'smbios1', 'tags'] as const;
export type ConfigureKey = (typeof CONFIGURE_KEYS)[number];

const CONFIGURE_WHY: Record<ConfigureKey, string> = {
  cores: 'set cores',
  sockets: 'keep the cores on one socket (a template’s sockets would multiply them)',
  memory: 'set memory',
  agent: 'turn the guest agent option on',
  net0: 'keep the NIC on its bridge and VLAN',
  ipconfig0: 'set the address (DHCP or static)',
  cicustom: 'point cloud-init at the snippet',
  smbios1: 'write the SMBIOS metadata (request serial, org, template)',
  tags: 'tag the VM',
};

/**
 * Where Proxmox checks a privilege: the pool (its VMs), the template, the template's storages, the snippets storage,
 * the bridge's SDN zone, `/`; for image imports, the storages that take `import` content and the nodes that download;
 * for the doctor's look at the nodes' bridges, the `localnetwork` zone itself.
 */
export type PrivilegeScope = 'pool' | 'template' | 'template-storages' | 'snippets-storage' | 'bridge' | 'root' | 'import-storages' | 'nodes' | 'sdn-zone';

/**
 * The stage of a build (as the build reports it), the completion, or the doctor's own look at the cluster; or
 * `diagnosing`: a build that waited in vain for its guest reads the guest's own log for its failure's message (a
 * healthy build never does, and one that cannot read it says so and why).
 */
export type PrivilegeStage = 'cloning' | 'migrating' | 'configuring' | 'starting' | 'waiting-for-ip' | 'diagnosing' | 'completing' | 'doctor' | 'day-2' | 'importing';

export interface PrivilegeNeed {
  stage: PrivilegeStage;
  /** The call, as an operator would look it up in the API viewer. */
  call: string;
  scope: PrivilegeScope;
  /** A privilege, or a list of which any one suffices. */
  privilege: string | readonly string[];
  why: string;
  /** Needed only with this setting or request (then not part of the role): when it is unset, nothing asks for it. */
  onlyWith?: string;
}

/** PVE ≤ 8 checks VM.Monitor for agent calls; PVE 9 removed it and checks VM.GuestAgent.Audit (or .Unrestricted). */
export function agentPrivilege(pveMajor: number | undefined): string | readonly string[] {
  if (pveMajor === undefined) return ['VM.GuestAgent.Audit', 'VM.GuestAgent.Unrestricted', 'VM.Monitor'];
  return pveMajor >= 9 ? ['VM.GuestAgent.Audit', 'VM.GuestAgent.Unrestricted'] : 'VM.Monitor';
}

/** Reading a guest's file through the agent: PVE ≤ 8 checks VM.Monitor; PVE 9 VM.GuestAgent.FileRead (or .Unrestricted). */
export function agentFileReadPrivilege(pveMajor: number | undefined): string | readonly string[] {
  if (pveMajor === undefined) return ['VM.GuestAgent.FileRead', 'VM.GuestAgent.Unrestricted', 'VM.Monitor'];
  return pveMajor >= 9 ? ['VM.GuestAgent.FileRead', 'VM.GuestAgent.Unrestricted'] : 'VM.Monitor';
}

const CONFIG = 'POST /nodes/{node}/qemu/{vmid}/config';

/** Every call of a build and a completion that Proxmox checks, in the order a build makes them. */
export function privilegeNeeds(pveMajor: number | undefined): PrivilegeNeed[] {
  const configured: PrivilegeNeed[] = CONFIGURE_KEYS.map((key) => {
    const need = configKeyPrivilege(key);
    if ('rootOnly' in need) throw new Error(`configureVm sends ${key}, which only root@pam may set`);
    const privilege = 'any' in need ? need.any : need.all.length === 1 ? need.all[0]! : need.all;
    return { stage: 'configuring', call: `${CONFIG} ${key}`, scope: 'pool', privilege, why: CONFIGURE_WHY[key] };
  });
  return [
    { stage: 'cloning', call: 'GET /cluster/resources', scope: 'template', privilege: 'VM.Audit', why: 'see the template (and, later, the VMs)' },
    { stage: 'cloning', call: 'POST /nodes/{node}/qemu/{template}/clone', scope: 'template', privilege: 'VM.Clone', why: 'clone the template' },
    { stage: 'cloning', call: 'POST /nodes/{node}/qemu/{template}/clone pool=', scope: 'pool', privilege: 'VM.Allocate', why: 'create the VMs in the pool' },
    { stage: 'cloning', call: 'POST /nodes/{node}/qemu/{template}/clone', scope: 'template-storages', privilege: 'Datastore.AllocateSpace', why: 'allocate the clones’ volumes' },
    { stage: 'cloning', call: 'POST /nodes/{node}/qemu/{template}/clone', scope: 'bridge', privilege: 'SDN.Use', why: 'attach the clone’s NIC to the bridge (PVE ≥ 8 checks it on every clone)' },
    { stage: 'cloning', call: 'GET /nodes/{node}/qemu/{vmid}/config', scope: 'pool', privilege: 'VM.Audit', why: 'read the VMs’ config and status' },
    {
      stage: 'migrating',
      call: 'POST /nodes/{node}/qemu/{vmid}/migrate',
      scope: 'pool',
      privilege: 'VM.Migrate',
      why: 'move a clone of a template on local storage to the chosen node',
      onlyWith: 'a template on local storage of a node that cannot take the VM',
    },
    ...configured,
    { stage: 'configuring', call: `${CONFIG} net0`, scope: 'bridge', privilege: 'SDN.Use', why: 'keep the NIC on its bridge' },
    { stage: 'configuring', call: 'PUT /nodes/{node}/qemu/{vmid}/resize', scope: 'pool', privilege: 'VM.Config.Disk', why: 'grow the boot disk when a request asks for a disk size' },
    { stage: 'starting', call: 'POST /nodes/{node}/qemu/{vmid}/status/start', scope: 'pool', privilege: 'VM.PowerMgmt', why: 'start the VMs' },
    { stage: 'starting', call: 'POST /cluster/ha/resources', scope: 'root', privilege: 'Sys.Console', why: 'make the VMs HA resources', onlyWith: 'PVE_HA' },
    { stage: 'waiting-for-ip', call: 'GET /nodes/{node}/qemu/{vmid}/agent/network-get-interfaces', scope: 'pool', privilege: agentPrivilege(pveMajor), why: 'ask the guest agent for the VM’s IP address' },
    {
      stage: 'diagnosing',
      call: 'GET /nodes/{node}/qemu/{vmid}/agent/file-read',
      scope: 'pool',
      privilege: agentFileReadPrivilege(pveMajor),
      why: 'read the guest’s cloud-init log when a VM never gets an address or never joins NetBird',
    },
    { stage: 'completing', call: 'POST /nodes/{node}/qemu/{vmid}/status/shutdown', scope: 'pool', privilege: 'VM.PowerMgmt', why: 'shut down and stop the VMs' },
    { stage: 'completing', call: 'DELETE /nodes/{node}/qemu/{vmid}', scope: 'pool', privilege: 'VM.Allocate', why: 'destroy the VMs' },
    // Day-2 operations on a built VM (src/workflows/request/operations.ts): no build needs these, the request's users do.
    { stage: 'day-2', call: 'POST /nodes/{node}/qemu/{vmid}/status/reboot', scope: 'pool', privilege: 'VM.PowerMgmt', why: 'start, shut down, reboot and stop the VMs on request' },
    { stage: 'day-2', call: `${CONFIG} vcpus`, scope: 'pool', privilege: 'VM.Config.CPU', why: 'change a VM’s CPUs (hot-plugged as vcpus where the VM allows)' },
    { stage: 'day-2', call: 'POST /nodes/{node}/qemu/{vmid}/snapshot', scope: 'pool', privilege: 'VM.Snapshot', why: 'take, revert to and delete snapshots of the VMs' },
    { stage: 'day-2', call: 'POST /nodes/{node}/qemu/{vmid}/migrate online=1', scope: 'pool', privilege: 'VM.Migrate', why: 'move a VM to another node (operators, day-2)' },
    // Importing an image (issue 31): the node downloads it into a storage's import content, a VM is created from it
    // (`import-from`: read access to that storage, the pool's privileges above) and made a template; the file goes after.
    {
      stage: 'importing',
      call: 'POST /nodes/{node}/storage/{storage}/download-url',
      scope: 'import-storages',
      privilege: 'Datastore.AllocateTemplate',
      why: 'download an image to import into the storage’s import content',
    },
    {
      stage: 'importing',
      call: 'POST /nodes/{node}/storage/{storage}/download-url',
      scope: 'nodes',
      privilege: 'Sys.AccessNetwork',
      why: 'let the node fetch an image’s URL (Proxmox also accepts Sys.Audit with Sys.Modify on /, which is far more)',
    },
    { stage: 'importing', call: 'GET /nodes/{node}/storage/{storage}/content', scope: 'import-storages', privilege: 'Datastore.AllocateSpace', why: 'find the downloaded image and create the template’s disk from it' },
    {
      stage: 'importing',
      call: 'DELETE /nodes/{node}/storage/{storage}/content/{volume}',
      scope: 'import-storages',
      privilege: 'Datastore.Allocate',
      why: 'remove the downloaded file once the template is made, or after a failed import',
    },
    { stage: 'doctor', call: 'GET /nodes/{node}/sdn/zones/localnetwork/content', scope: 'sdn-zone', privilege: 'SDN.Audit', why: 'let pveflow doctor check that every allowed bridge exists on every node' },
    // The snippets go over SFTP, not through the API; the doctor reads the storage's content types with this.
    { stage: 'doctor', call: 'GET /nodes/{node}/storage', scope: 'snippets-storage', privilege: 'Datastore.AllocateSpace', why: 'let pveflow doctor check that the snippets storage takes snippets on every node' },
  ];
}

/** What a need asks, as text: `A` or `A or B`. */
export function privilegeText(privilege: string | readonly string[]): string {
  return typeof privilege === 'string' ? privilege : privilege.join(' or ');
}

/**
 * The privileges of the role docs/operations.md tells operators to create, for PVE `pveMajor`: every need that is
 * not tied to an optional setting; of alternatives, none when the role already holds one, else the first.
 */
export function pveflowRole(pveMajor: number): string[] {
  const needs = privilegeNeeds(pveMajor).filter((n) => !n.onlyWith);
  const role = new Set(needs.flatMap((n) => (typeof n.privilege === 'string' ? [n.privilege] : [])));
  for (const n of needs) {
    if (typeof n.privilege !== 'string' && !n.privilege.some((p) => role.has(p))) role.add(n.privilege[0]!);
  }
  return [...role].sort();
}

/** The first stage of a build (or the completion) that needs `privilege`, not counting optional ones. */
export function firstStageNeeding(privilege: string, pveMajor: number): PrivilegeStage | undefined {
  const role = new Set(pveflowRole(pveMajor));
  return privilegeNeeds(pveMajor).find((n) => {
    if (n.onlyWith) return false;
    if (typeof n.privilege === 'string') return n.privilege === privilege;
    // An alternative counts only when the role holds no other one of them.
    return n.privilege.includes(privilege) && n.privilege.filter((p) => role.has(p)).length === 1;
  })?.stage;
}

/** What an operator does about a missing privilege: one line to put into a failure's message. */
export function grantAdvice(privileges: readonly string[], path: string | undefined): string {
  const list = privileges.join(' ');
  const where = path ? ` granted on ${path}${/^\/vms\/\d+$/.test(path) ? ' (for pveflow’s VMs: on the pool, PVE_POOL)' : ''}` : '';
  return (
    `Grant ${privileges.join(', ')}: add it to the PVEflow role (pveum role modify PVEflow --append 1 --privs "${list}") and make sure the role is${where} ` +
    `to both the token and its user (a privilege-separated token holds only what both hold); docs/operations.md lists the role and the grants.`
  );
}
