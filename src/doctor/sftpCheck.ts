import { randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import { SftpClient, SftpError, type SftpTarget } from '../clients/sftp';
import { fail, pass, type Finding } from './finding';

/**
 * Each node's snippets directory over SFTP, exactly as an upload will use it: connect with the pinned host key,
 * write a probe file, read it back, remove it. A hidden name, so that nothing lists it in the short time it exists.
 */
export async function checkSftp(nodes: readonly string[], sftpTarget: (node: string) => SftpTarget, snippetsDir: string): Promise<Finding[]> {
  return Promise.all(nodes.map((node) => checkNode(node, sftpTarget, snippetsDir)));
}

async function checkNode(node: string, sftpTarget: (node: string) => SftpTarget, snippetsDir: string): Promise<Finding> {
  const check = `sftp ${node}`;
  let target: SftpTarget;
  try {
    target = sftpTarget(node);
  } catch (err) {
    return fail(check, (err as Error).message, `add ${node} to SSH_NODES (${node}=<address>[:port]) and SSH_HOST_FINGERPRINTS`);
  }
  const probe = posix.join(snippetsDir, `.pveflow-doctor-${randomBytes(6).toString('hex')}`);
  const content = Buffer.from(`pveflow doctor ${new Date().toISOString()}\n`);
  const client = new SftpClient(target);
  try {
    await client.upload(probe, content);
    const back = await client.read(probe);
    await client.remove(probe);
    if (!back?.equals(content)) {
      return fail(check, `a probe file written to ${snippetsDir} on ${target.host}:${target.port} read back differently`, 'check the disk and the filesystem behind the snippets directory');
    }
    return pass(check, `wrote, read and removed a probe file in ${snippetsDir} on ${target.host}:${target.port}`);
  } catch (err) {
    return fail(check, (err as Error).message, err instanceof SftpError ? sftpFix(err, target.username, snippetsDir) : undefined);
  } finally {
    await client.close();
  }
}

function sftpFix(err: SftpError, user: string, dir: string): string | undefined {
  switch (err.kind) {
    case 'host-key-mismatch':
      return 'verify the key on the node (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and update SSH_HOST_FINGERPRINTS';
    case 'auth':
      return `add the public half of SSH_PRIVATE_KEY_FILE to ~${user}/.ssh/authorized_keys on the node`;
    case 'connect':
    case 'timeout':
      return 'check the address in SSH_NODES, that sshd runs there and that no firewall drops port 22';
    case 'permission':
      return `let ${user} write ${dir} on the node`;
    case 'io':
      return `create ${dir} by enabling the snippets content type on PVE_SNIPPETS_STORAGE`;
  }
}
