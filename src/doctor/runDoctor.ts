import type { NetbirdClient } from '../clients/netbird';
import type { PveClient } from '../clients/pve';
import type { SftpTarget } from '../clients/sftp';
import { fail, type Finding } from './finding';
import { checkNetbird } from './netbirdCheck';
import { checkNetbirdPolicies } from './netbirdPolicyCheck';
import { checkPve, type PveCheckSettings } from './pveChecks';
import { checkSftp } from './sftpCheck';

/** What the doctor needs; the worker's `ActivityDeps` plus the token's id and secret fit it. */
export interface DoctorDeps {
  pve: PveClient;
  token: { id: string; secret: string };
  sftpTarget(node: string): SftpTarget;
  /** Omitted: the NetBird check is skipped (a deployment without VPN). */
  netbird?: NetbirdClient;
  settings: PveCheckSettings & { snippetsDir: string };
}

/**
 * Everything the seeds' operators get wrong, checked against the live systems before the first request does:
 * token, privileges, template, snippets storage, SFTP to every node that may run a VM, NetBird. Never throws:
 * every problem is a finding with what to fix. Only the SFTP probe writes anything (and removes it).
 */
export async function runDoctor(deps: DoctorDeps): Promise<Finding[]> {
  const pve = await checkPve(deps);
  const [sftp, netbird] = await Promise.all([
    pve.nodes ? checkSftp(pve.nodes, deps.sftpTarget, deps.settings.snippetsDir) : Promise.resolve([fail('sftp', 'not checked: the list of nodes could not be read from Proxmox VE')]),
    deps.netbird ? netbirdFindings(deps.netbird) : Promise.resolve([]),
  ]);
  return [...pve.findings, ...sftp, ...netbird];
}

/** The token first: with a refused one, the policies cannot be read and saying so again would add nothing. */
async function netbirdFindings(netbird: NetbirdClient): Promise<Finding[]> {
  const token = await checkNetbird(netbird);
  return token.ok ? [token, await checkNetbirdPolicies(netbird)] : [token];
}

/** One line per finding, failures with their fix; for the CLI and the worker's start-up log. */
export function formatFindings(findings: readonly Finding[]): string {
  const lines = findings.map((f) => `${f.ok ? 'ok  ' : 'FAIL'}  ${f.check}: ${f.message}${!f.ok && f.fix ? `\n        fix: ${f.fix}` : ''}`);
  const failed = findings.filter((f) => !f.ok).length;
  lines.push('', failed ? `${failed} of ${findings.length} checks failed` : `all ${findings.length} checks passed`);
  return lines.join('\n');
}
