import { whileHeartbeating } from '../heartbeating';
import { posix } from 'node:path';
import { SftpClient, SftpError } from '../../clients/sftp';
import { ApplicationFailure } from '@temporalio/activity';
import { deviceNames } from '../../domain/deviceNames';
import { ErrorType } from '../../errors';
import type { ActivityDeps } from '../deps';
import { step } from '../netbird/failures';
import { createOrAdoptGroup } from '../netbird/lookups';
import { renderUserData } from './cloudInit';
import type { SealedCredentials } from '../../domain/guestCredentials';
import type { CloudInitChoices } from '../../domain/cloudInitChoices';
import { generateGuestCredentials, sha512Crypt } from './guestCredentials';

export interface PrepareCloudInitInput {
  serial: string;
  name: string;
  node: string;
  sshKeys: string[];
  /** The request's packages, commands, files and cloud-config fragment (checked at intake), merged under pveflow's keys. */
  cloudInit?: CloudInitChoices;
}

export interface PreparedCloudInit {
  snippetVolid: string;
  /** Sealed under the request's credential key: history only ever holds this. */
  credentials: SealedCredentials;
  /**
   * Whether this attempt made the NetBird device group rather than adopting one: a group made now is referred to by
   * no policy, so the grant may create the request's policy without looking for an earlier one.
   */
  deviceGroupCreated: boolean;
}

/**
 * Writes the VM's cloud-init user-data to its node, with a fresh one-off NetBird setup key inside. The key exists
 * in clear only here and in the snippet: never in the activity's result (workflow history) or a log line. A retry
 * deletes the earlier attempt's unused key (NetBird never shows a key twice) and writes the snippet again.
 */
export function cloudInitSnippetActivities({ netbird, pve, sftpTarget, settings, credentialKeys }: ActivityDeps) {
  const pathOf = (file: string) => posix.join(settings.snippetsDir, file);

  return {
    /**
     * Returns the generated logins: they travel only in this result and the request's state, which the payload codec
     * encrypts, and reach a person once, through the credentials endpoint.
     */
    async prepareCloudInit({ serial, name, node, sshKeys, cloudInit }: PrepareCloudInitInput): Promise<PreparedCloudInit> {
      const names = deviceNames(serial, name);
      const device = await step(serial, `creating NetBird group ${names.deviceGroup}`, () => createOrAdoptGroup(netbird, names.deviceGroup));
      const deviceGroup = device.group;
      const setupKey = await step(serial, `creating NetBird setup key ${names.setupKey}`, async () => {
        // A device group made just now has no key yet: only an adopted one can have an earlier attempt's key.
        const stale = device.created ? [] : (await netbird.listSetupKeys()).filter((k) => k.name === names.setupKey);
        for (const key of stale) await netbird.deleteSetupKey(key.id);
        return netbird.createSetupKey({
          name: names.setupKey,
          type: 'one-off',
          expires_in: settings.setupKeyTtlSeconds,
          auto_groups: [deviceGroup.id],
          usage_limit: 1,
          ephemeral: false,
        });
      });
      const credentials = generateGuestCredentials();
      const userData = renderUserData({
        hostname: names.hostname,
        sshKeys,
        netbird: { managementUrl: settings.netbirdManagementUrl, setupKey: setupKey.key },
        passwordHashes: { user: credentials.username, userHash: await sha512Crypt(credentials.password), rootHash: await sha512Crypt(credentials.rootPassword) },
        ...(cloudInit ? { choices: cloudInit } : {}),
      });
      await withSftp(sftpTarget(node), serial, node, (sftp) => sftp.upload(pathOf(names.snippetFile), userData));
      const sealed = await credentialKeys.seal(serial, credentials);
      return { snippetVolid: `${settings.snippetsStorage}:snippets/${names.snippetFile}`, credentials: sealed, deviceGroupCreated: device.created };
    },

    /** Crypto-shreds the request's guest credentials: every sealed copy in Temporal becomes unreadable. */
    async destroyCredentialKey({ serial }: { serial: string }): Promise<'destroyed' | 'absent'> {
      return (await credentialKeys.destroy(serial)) ? 'destroyed' : 'absent';
    },

    /**
     * Removes the request's snippet from `node` and from every other node of the cluster: a VM migrated behind
     * pveflow's back may have left it anywhere. A node that cannot be reached fails the removal, naming it, so that
     * the completion records the snippet as left behind rather than forgetting it.
     */
    async removeSnippet({ serial, name, node }: { serial: string; name: string; node: string }): Promise<'removed' | 'absent'> {
      return whileHeartbeating(async () => {
        const file = pathOf(deviceNames(serial, name).snippetFile);
        let others: string[];
        try {
          // An offline node cannot be asked; its snippet, if any, is the record's node's or waits for it to return.
          others = (await pve.nodes()).filter((n) => n.status === 'online' && n.node !== node).map((n) => n.node);
        } catch {
          // Proxmox unreachable: the node the record names is still worth cleaning; the others wait for the retry.
          others = [];
        }
        let removed = (await withSftp(sftpTarget(node), serial, node, (sftp) => sftp.remove(file))) === 'removed';
        for (const other of others) {
          let target: ReturnType<typeof sftpTarget>;
          try {
            target = sftpTarget(other);
          } catch {
            continue; // no SSH address: pveflow never wrote there
          }
          if ((await withSftp(target, serial, other, (sftp) => sftp.remove(file))) === 'removed') removed = true;
        }
        return removed ? 'removed' : 'absent';
      });
    },

    /**
     * The snippet follows its VM to the node it was found on (a migration by an operator or HA): Proxmox reads
     * `cicustom` from the VM's own node at every start, so without it the next start fails. Copy, then remove the old
     * one; a retry finds the copy already there and only removes.
     */
    async moveSnippet({ serial, name, from, to }: { serial: string; name: string; from: string; to: string }): Promise<'moved' | 'already-there' | 'absent'> {
      // Up to four SFTP calls, each bounded by its own timeout: together longer than the heartbeat timeout allows.
      return whileHeartbeating(async () => {
        const file = pathOf(deviceNames(serial, name).snippetFile);
        const there = await withSftp(sftpTarget(to), serial, to, (sftp) => sftp.read(file));
        if (!there) {
          const text = await withSftp(sftpTarget(from), serial, from, (sftp) => sftp.read(file));
          if (!text) return 'absent';
          await withSftp(sftpTarget(to), serial, to, (sftp) => sftp.upload(file, text));
        }
        await withSftp(sftpTarget(from), serial, from, (sftp) => sftp.remove(file));
        return there ? 'already-there' : 'moved';
      });
    },
  };
}

async function withSftp<T>(target: ConstructorParameters<typeof SftpClient>[0], serial: string, node: string, fn: (c: SftpClient) => Promise<T>): Promise<T> {
  const client = new SftpClient(target);
  try {
    return await fn(client);
  } catch (err) {
    if (err instanceof SftpError) {
      throw ApplicationFailure.create({
        type: err.kind === 'host-key-mismatch' ? ErrorType.SshHostKeyMismatch : err.retryable ? ErrorType.SftpTransient : ErrorType.SftpFailed,
        nonRetryable: !err.retryable,
        message: `SFTP to node ${node} for request ${serial}: ${err.message}`,
      });
    }
    throw err;
  } finally {
    await client.close();
  }
}
