import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { createNetbirdGroups } from '../src/worker';
import { createActivities } from '../src/activities';
import type { ActivityDeps } from '../src/activities/deps';
import { NetbirdClient } from '../src/clients/netbird';
import { PveClient } from '../src/clients/pve';
import { CredentialKeys } from '../src/credentials/credentialKeys';
import { createPveSimulator, generateSeed, zeroTiming } from '../src/simulators/pve';
import { simulatorTls } from '../src/simulators/tls';
import { requireTemporalBinary } from '../src/temporal/binaries';
import { clusterSync } from '../src/workflows';
import { PveNodeKey, RequestStatusKey, SerialKey, searchAttributeDefinitions, VmIdKey, VmStateKey } from '../src/contracts/searchAttributes';

/**
 * clusterSync over 100, 1,000 and 10,000 simulated VMs (5 nodes, half of them in the pveflow pool) with 100
 * managed requests, 3 of whose VMs have vanished. Prints per run: duration, the process's peak RSS, history events
 * and bytes, result bytes — the last two must stay flat as the cluster grows (only deltas cross payloads).
 * The managed requests are parked vmRequest executions carrying the search attributes a real one has when
 * Fulfilled: the sync finds them through visibility exactly as it finds real ones.
 * Run: `npm run bench:sync` (about a minute).
 */
const SIZES = [100, 1_000, 10_000];
const MANAGED = 100;
const VANISHED = 3;
const SECRET = 'bench-token-secret';

async function main(): Promise<void> {
  const env = await TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'existing-path', path: requireTemporalBinary('temporal') }, searchAttributes: searchAttributeDefinitions },
  });
  const dir = mkdtempSync(join(tmpdir(), 'pveflow-bench-sync-'));
  const bundle = await bundleWorkflowCode({ workflowsPath: require.resolve('../src/workflows'), logger: { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error: console.error } });
  const tls = await simulatorTls(dir);
  const rows: string[] = [];
  try {
    for (const size of SIZES) {
      const seed = generateSeed({ nodes: 5, vms: size, tokenSecret: SECRET });
      const sim = createPveSimulator({ seed, timing: zeroTiming, snippetsDir: () => dir });
      const server = await sim.listen({ host: '127.0.0.1', port: 0, tls });
      const pve = new PveClient({ endpoint: new URL(server.url).origin, tokenId: 'pveflow@pve!automation', tokenSecret: SECRET, ca: tls.ca, timeoutMs: 30_000 });
      const parkedQueue = `parked-${size}`;
      // Requests owning pool VMs (every other generated VM is in the pool), the first few pointing at VMs that are gone.
      const poolVms = seed.vms.filter((v) => v.pool === 'pveflow' && v.vmid !== 9000).slice(0, MANAGED);
      const parked = await Promise.all(
        poolVms.map((vm, i) =>
          env.client.workflow.start('vmRequest', {
            workflowId: `vm-request-VM-B${size}-${i}`,
            taskQueue: parkedQueue,
            args: [],
            typedSearchAttributes: [
              { key: SerialKey, value: `VM-B${size}-${i}` },
              { key: VmIdKey, value: i < VANISHED ? 900_000 + i : vm.vmid },
              { key: PveNodeKey, value: vm.node },
              { key: RequestStatusKey, value: 'Fulfilled' },
              { key: VmStateKey, value: vm.running ? 'running' : 'stopped' },
            ],
          }),
        ),
      );
      await waitVisible(env, `TaskQueue = '${parkedQueue}'`, parked.length);

      const unusedNetbird = new NetbirdClient({ baseUrl: 'https://127.0.0.1:9', token: 'unused', timeoutMs: 1_000 });
      const deps: ActivityDeps = {
        pve,
        netbird: unusedNetbird,
        netbirdGroups: createNetbirdGroups(unusedNetbird),
        temporal: { client: env.client, taskQueue: parkedQueue },
        credentialKeys: new CredentialKeys(join(tmpdir(), 'pveflow-bench-sync-keys')), // clusterSync seals nothing
        sftpTarget: () => {
          throw new Error('clusterSync uses no SFTP');
        },
        settings: {
          pool: 'pveflow',
          vmidRange: { min: 10_000, max: 99_999 },
          templateVmid: 9000,
          bridge: 'vmbr0',
          fullCloneDefault: false,
          snippetsStorage: 'local',
          snippetsDir: '/var/lib/vz/snippets',
          netbirdManagementUrl: 'https://127.0.0.1:9',
          setupKeyTtlSeconds: 86_400,
          missingConsultant: 'report',
          guestIpWaitSeconds: 60,
          peerWaitSeconds: 60,
          pollMinMs: 50,
          pollMaxMs: 500,
        },
      };
      const taskQueue = `bench-sync-${size}`;
      const worker = await Worker.create({ connection: env.nativeConnection, taskQueue, workflowBundle: bundle, activities: createActivities(deps) });
      const t0 = performance.now();
      const result = await worker.runUntil(env.client.workflow.execute(clusterSync, { workflowId: `cluster-sync-bench-${size}`, taskQueue }));
      const ms = performance.now() - t0;
      const peakRssMiB = process.resourceUsage().maxRSS / 1024; // the whole process: worker, simulator and client
      const history = await env.client.workflow.getHandle(`cluster-sync-bench-${size}`).fetchHistory();
      const events = history.events?.length ?? 0;
      const historyBytes = Buffer.byteLength(JSON.stringify(history));
      const resultBytes = Buffer.byteLength(JSON.stringify(result));
      if (result.drifts.length !== VANISHED) throw new Error(`expected ${VANISHED} drifts, got ${JSON.stringify(result.drifts)}`);
      rows.push(
        `sync ${String(size).padStart(6)} VMs (${String(result.vmsSeen).padStart(5)} visible, ${result.requestsChecked} requests): ` +
          `${ms.toFixed(0).padStart(5)} ms, peak RSS ${peakRssMiB.toFixed(0)} MiB, ${events} history events, ` +
          `${historyBytes} history bytes, ${resultBytes} result bytes, ${result.drifts.length} drifts, ${result.orphanCount} orphans`,
      );
      await Promise.all(parked.map((h) => h.terminate('benchmark round over')));
      await pve.close();
      await deps.netbird.close();
      await server.close();
    }
  } finally {
    await env.teardown();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(rows.join('\n'));
}

async function waitVisible(env: TestWorkflowEnvironment, query: string, n: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if ((await env.client.workflow.count(query)).count >= n) return;
    await sleep(100);
  }
  throw new Error(`visibility never showed ${n} workflows for ${query}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
