import { timingSafeEqual } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { Server, type Connection, type PublicKeyAuthContext } from 'ssh2';
import { z } from 'zod';
import { parseSshKey, sshFingerprint } from '../../clients/sftp/keys';
import { MountTable } from './mounts';
import { serveSftp } from './sftpSession';

const optionsSchema = z.object({
  hostKey: z.string().min(1),
  username: z.string().min(1),
  authorizedKeys: z.array(z.string().min(1)),
  mounts: z.record(z.string(), z.string()),
});

export type SftpServerOptions = z.input<typeof optionsSchema>;

export interface RunningSftpServer {
  port: number;
  hostKeyFingerprint: string;
  /** Stops listening and drops every connected client. */
  close(): Promise<void>;
}

export interface SftpServer {
  listen(opts?: { host?: string; port?: number }): Promise<RunningSftpServer>;
}

/**
 * A simulated Proxmox node's SSH endpoint: SFTP only (no shell, exec or forwarding — ssh2 refuses whatever has no
 * handler), public-key login for one user, and the node's file system reduced to the mounted directories.
 */
export function createSftpServer(options: SftpServerOptions): SftpServer {
  const opts = optionsSchema.parse(options);
  const hostKey = parseSshKey(opts.hostKey);
  if (!hostKey.isPrivateKey()) throw new Error('the SFTP server needs a private host key, got a public key');
  const hostKeyFingerprint = sshFingerprint(opts.hostKey);
  const authorized = opts.authorizedKeys.map((key) => parseSshKey(key).getPublicSSH());
  const mounts = new MountTable(opts.mounts);

  const findAuthorizedKey = (blob: Buffer) => authorized.find((candidate) => candidate.length === blob.length && timingSafeEqual(candidate, blob));

  const authenticate = (ctx: PublicKeyAuthContext): boolean => {
    if (ctx.username !== opts.username || findAuthorizedKey(ctx.key.data) === undefined) return false;
    // Without a signature the client only asks whether this key would do; the answer may be yes.
    if (ctx.signature === undefined || ctx.blob === undefined) return true;
    return parseSshKey(ctx.key.data).verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true;
  };

  const onConnection = (client: Connection): void => {
    // Clients that drop mid-handshake are normal traffic for a server; without a listener the error would crash it.
    client.on('error', () => undefined);
    client.on('authentication', (ctx) => {
      if (ctx.method === 'publickey' && authenticate(ctx)) ctx.accept();
      else ctx.reject(['publickey']);
    });
    client.on('ready', () => {
      client.on('session', (acceptSession) => {
        const session = acceptSession();
        session.on('sftp', (acceptSftp) => serveSftp(acceptSftp(), mounts));
      });
    });
  };

  return {
    async listen({ host = '127.0.0.1', port = 0 } = {}) {
      // The mounts stand for directories that exist on a node (e.g. the `local` storage's snippets directory).
      for (const dir of mounts.localDirectories) await mkdir(dir, { recursive: true });
      // Our own TCP server feeding ssh2, so that close() can reach every socket, even one still mid-handshake.
      const ssh = new Server({ hostKeys: [opts.hostKey] }, onConnection);
      const sockets = new Set<Socket>();
      const server = createServer((socket) => {
        sockets.add(socket);
        socket.once('close', () => sockets.delete(socket));
        // OpenSSH answers each packet at once; with Nagle on, ssh2's small writes waited for the client's delayed
        // ACK, and a connection plus one upload took half a second here against 40 ms against a real sshd.
        socket.setNoDelay(true);
        ssh.injectSocket(socket);
      });
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve();
        });
      });
      return {
        port: (server.address() as AddressInfo).port,
        hostKeyFingerprint,
        close: () =>
          new Promise<void>((resolve, reject) => {
            server.close((error) => (error ? reject(error) : resolve()));
            for (const socket of sockets) socket.destroy();
          }),
      };
    },
  };
}
