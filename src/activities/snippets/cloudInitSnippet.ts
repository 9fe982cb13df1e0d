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
import { generateGuestCredentials, sha512Crypt } from './guestCredentials';

export interface PrepareCloudInitInput {
  serial: string;
  name: string;
  node: string;
  sshKeys: string[];
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
export function cloudInitSnippetActivities({ netbird, sftpTarget, settings, credentialKeys }: ActivityDeps) {
  const pathOf = (file: string) => posix.join(settings.snippetsDir, file);

  return {
    /**
     * Returns the generated logins: they travel only in this result and the request's state, which the payload codec
     * encrypts, and reach a person once, through the credentials endpoint.
     */
    async prepareCloudInit({ serial, name, node, sshKeys }: PrepareCloudInitInput): Promise<PreparedCloudInit> {
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
      });
      await withSftp(sftpTarget(node), serial, node, (sftp) => sftp.upload(pathOf(names.snippetFile), userData));
      const sealed = await credentialKeys.seal(serial, credentials);
      return { snippetVolid: `${settings.snippetsStorage}:snippets/${names.snippetFile}`, credentials: sealed, deviceGroupCreated: device.created };
    },

    /** Crypto-shreds the request's guest credentials: every sealed copy in Temporal becomes unreadable. */
    async destroyCredentialKey({ serial }: { serial: string }): Promise<'destroyed' | 'absent'> {
      return (await credentialKeys.destroy(serial)) ? 'destroyed' : 'absent';
    },

    async removeSnippet({ serial, name, node }: { serial: string; name: string; node: string }): Promise<'removed' | 'absent'> {
      return whileHeartbeating(async () => {
        const file = pathOf(deviceNames(serial, name).snippetFile);
        return withSftp(sftpTarget(node), serial, node, (sftp) => sftp.remove(file));
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
