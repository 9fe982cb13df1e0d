/**
 * DRAFT — NOT RUN BY THE SUITE (test/drafts/ is outside `test/*.test.ts`); skipped even when run by hand.
 *
 * Issue 26 part 6, the end-to-end test: a consultant logs into a real Debian guest over NetBird's own server. It
 * needs three branches merged: the shared NetBird harness (test/support/netbirdServer.ts, scripts/install-netbird.sh),
 * the guest image and the Proxmox simulator's real-guest mode (QEMU), and this one (test/support/netbirdUserPeer.ts,
 * test/support/localAptRepo.ts). What is wired below uses only this branch's pieces; each `wire:` marks what the lead
 * connects once the others are in. When it runs, move it to test/e2e-consultant.e2e.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { generateSshKeyPair } from '../../src/clients/sftp/keys';
import { validRequestBody } from '../support/requests';
import { startLocalAptRepo, type LocalAptRepo } from '../support/localAptRepo';
import { createNetbirdUser, listPeers, loginPeerAsUser, type NetbirdUser, type UserPeer, type UserPeerServer } from '../support/netbirdUserPeer';

/** What the shared harness must offer (test/support/netbirdServer.ts): `UserPeerServer` plus a stop. */
interface E2eNetbirdServer extends UserPeerServer {
  /** For QEMU: `guestfwd=tcp:10.0.2.100:33073-cmd:<this>`. */
  guestForwardCommand: string;
  stop(): Promise<void>;
}

const PREFIX = 'consultant-e2e';

describe('a consultant logs into the VM over NetBird (issue 26 part 6)', { skip: 'draft: waits for the NetBird harness and the real-guest mode to be merged' }, () => {
  let netbird: E2eNetbirdServer;
  let repo: LocalAptRepo;
  let consultant: NetbirdUser;
  let outsider: NetbirdUser;
  let laptop: UserPeer;
  let otherLaptop: UserPeer;
  const sshKey = generateSshKeyPair('consultant-e2e');
  const stages: Record<string, number> = {};

  before(async () => {
    // wire: netbird = await startNetbirdServer({ prefix: PREFIX }) — the shared harness, plus `openPeerNamespace(name)`
    //       (its startPeer's namespace + socat bridge, without the setup-key client). Then delete the account's
    //       `Default` policy (issue 26 part 3: pveflow's doctor refuses to run with it).
    netbird = undefined as unknown as E2eNetbirdServer;
    repo = await startLocalAptRepo();
    // wire: pveflow's embedded stack (test/support/testStack.ts) with NETBIRD_API_URL=netbird.apiUrl,
    //       NETBIRD_TOKEN=netbird.token, NETBIRD_MANAGEMENT_URL=netbird.managementUrl, the Proxmox simulator's
    //       real-guest world option on, and the VM's `-netdev user,...` carrying both guestfwd rules:
    //       `guestfwd=tcp:10.0.2.100:33073-cmd:${netbird.guestForwardCommand}` and `repo.guestFwd` (10.0.2.101:80).

    // The consultant and a second user, each with their own machine signed in through Dex (not a setup key).
    consultant = await createNetbirdUser(netbird, { email: 'alice@consultancy.example', name: 'Alice', autoGroups: [] });
    outsider = await createNetbirdUser(netbird, { email: 'mallory@consultancy.example', name: 'Mallory', autoGroups: [] });
    laptop = await loginPeerAsUser({ server: netbird, namespacePrefix: PREFIX, email: consultant.email, password: consultant.password, hostname: 'alice-laptop' });
    otherLaptop = await loginPeerAsUser({ server: netbird, namespacePrefix: PREFIX, email: outsider.email, password: outsider.password, hostname: 'mallory-laptop' });
  });
  after(async () => {
    await laptop?.stop();
    await otherLaptop?.stop();
    await repo?.stop();
    await netbird?.stop();
    // wire: stop pveflow's stack; assert no QEMU process and no disk of this test is left (the simulator's dir).
    console.log('approval → first SSH login, by stage (ms):', stages);
  });

  it('a requester submits, it is approved, and it becomes Fulfilled', () => {
    const body = validRequestBody({
      consultants: [consultant.email],
      ssh_keys: [sshKey.publicKey],
      cloud_init: {
        packages: [repo.packageName],
        runcmd: ['echo ran > /var/tmp/pveflow-e2e-runcmd'],
        write_files: [repo.writeFile, { path: '/etc/pveflow-e2e/written', content: 'written\n', permissions: '0644' }],
      },
    });
    void body;
    // wire: apiRequestDriver(keyedApiCall(...)).startApproved(body); time stages from the build log / timeline:
    //       clone, boot to agent IP, cloud-init done, peer connected, policy effective (issue 26 part 7), into `stages`.
    // wire: waitForStatus('Fulfilled', { timeoutMs: 10 * 60_000 }); record = the request's record.
  });

  it("from the consultant's machine: SSH with the request's key lands on the request's hostname", async () => {
    const vpnIp = '' as string; // wire: record.device.vpnIp
    const hostname = '' as string; // wire: record.device.hostname
    // The key goes to a file in the laptop's namespace (its exec runs on the host's filesystem).
    // wire: write sshKey.privateKey to a 0600 temp file `keyFile`.
    const keyFile = '';
    const ssh = (cmd: string) => laptop.exec('ssh', ['-i', keyFile, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'ConnectTimeout=10', `arrow@${vpnIp}`, cmd], { timeoutMs: 30_000 });
    assert.equal((await ssh('hostname')).stdout.trim(), hostname);
    // The package came from the local repository; runcmd and write_files took effect.
    assert.equal((await ssh(`cat ${repo.markerPath}`)).stdout, repo.markerContent);
    assert.ok(
      repo.requests.some((p) => p.endsWith('.deb')),
      'the guest fetched the package from the local repository',
    );
    assert.equal((await ssh('cat /var/tmp/pveflow-e2e-runcmd')).stdout, 'ran\n');
    assert.equal((await ssh('cat /etc/pveflow-e2e/written')).stdout, 'written\n');
    // wire: the revealed password (GET /api/device_requests/{serial}/credentials as the consultant) logs in:
    //       `sshpass -e ssh -o PreferredAuthentications=password ...` is refused (ssh_pwauth stays off), so prove it
    //       with `su` over the key session: `echo <pw> | su -c true arrow` — or `sudo -S true`.
    // wire: record.device.vpnIp equals the address NetBird reports for the VM's peer (listPeers) and the VM's own
    //       wt0 address read through the guest agent (guest-network-get-interfaces).
  });

  it('is one-way: the VM cannot reach the consultant, and another user cannot reach the VM', async () => {
    const vpnIp = '' as string; // wire: record.device.vpnIp
    // The outsider's machine is on the VPN but in no policy with the VM.
    const probe = await otherLaptop.exec('nc', ['-z', '-w', '5', vpnIp, '22'], { timeoutMs: 15_000 });
    assert.notEqual(probe.status, 0, 'a user not on the request reaches the VM');
    // wire: from the VM (ssh from the laptop, then `nc -z -w 5 <laptop.peer.ip> <a port the laptop listens on>`):
    //       refused. Start a listener in the laptop's namespace first (`socat TCP-LISTEN:<port>,bind=<ip>`), so that
    //       a pass here is the policy, not a closed port.
  });

  it('a day-2 reboot changes none of it', () => {
    // wire: POST /api/device_requests/{serial}/power { action: 'reboot' }; wait running + agent; then over SSH:
    //       `cloud-init query` instance id unchanged, /var/lib/cloud/instance/boot-finished older than the reboot,
    //       no second NetBird registration (one peer for the VM in listPeers), the key and the password still work.
  });

  it('after complete, nothing of the request is left in NetBird and the consultant reaches nothing', async () => {
    // wire: POST /api/device_requests/{serial}/complete; wait Completed.
    const peers = await listPeers(netbird);
    assert.ok(!peers.some((p) => p.name.startsWith('TODO-request-hostname')), "the VM's peer is gone");
    // wire: GET /api/groups, /api/policies, /api/setup-keys: no object named by deviceNames(serial, name);
    //       laptop.exec('nc', ['-z', '-w', '5', vpnIp, '22']) fails; the QEMU process and its linked clone are gone.
  });
});
