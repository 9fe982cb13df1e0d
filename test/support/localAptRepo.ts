import { execFile } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, normalize } from 'node:path';
import { promisify } from 'node:util';
import type { WriteFile } from '../../src/domain/cloudInitChoices';

const run = promisify(execFile);

/**
 * A Debian package repository of the test's own, so that a request's `packages:` can be shown to install something
 * on a real guest that has no mirror. One tiny package is built with dpkg-deb, indexed as a flat repository
 * (`Packages`, `Release` from apt-ftparchive, unsigned: the guest trusts it with `[trusted=yes]`), and served by a
 * node HTTP server on 127.0.0.1.
 *
 * The guest reaches it through QEMU's user-mode networking: a `guestfwd` rule turns connections to a made-up address
 * inside the guest's 10.0.2.0/24 into a `socat` to the host's port. The address is 10.0.2.101 (10.0.2.100 is the
 * NetBird server's in real-guest mode); `guestFwd` is the rule the VM's `-netdev user,...` must carry.
 */

/** Inside the guest: where the repository answers (QEMU's guestfwd turns it into the host's 127.0.0.1:<port>). */
export const APT_REPO_GUEST_ADDRESS = '10.0.2.101';
export const APT_REPO_GUEST_PORT = 80;

export const MARKER_PACKAGE = 'pveflow-e2e-marker';
/** The file the marker package installs, and what it holds: a test checks both on the guest. */
export const MARKER_PATH = '/usr/share/pveflow-e2e/marker';

export interface LocalAptRepo {
  /** The package a request's `cloud_init.packages` names. */
  packageName: string;
  packageVersion: string;
  /** Installed by the package, holding `markerContent`. */
  markerPath: string;
  markerContent: string;
  /** The host side: http://127.0.0.1:<port>/ */
  hostUrl: string;
  hostPort: number;
  /** For QEMU's `-netdev user,...`: `guestfwd=tcp:10.0.2.101:80-cmd:socat - TCP:127.0.0.1:<port>`. */
  guestFwd: string;
  /** The one-line sources entry a guest uses: `deb [trusted=yes] http://10.0.2.101:80/ ./`. */
  guestSourcesLine: string;
  /**
   * The request's `cloud_init.write_files` entry. Not deferred: cloud-init writes files in its init stage, and installs
   * `packages` (after pveflow's `package_update`) in its final stage, so the list is in place when apt reads its sources.
   */
  writeFile: WriteFile;
  /** The same sources line pointing at the host side, for trying the repository from this host. */
  hostSourcesLine: string;
  /** Paths requested from the server, in order (a test can see that a guest fetched the package). */
  requests: string[];
  /** Where the .deb lies on the host. */
  debPath: string;
  stop(): Promise<void>;
}

export async function startLocalAptRepo(opts: { markerContent?: string } = {}): Promise<LocalAptRepo> {
  await requireTools();
  const dir = await mkdtemp(join(tmpdir(), 'pveflow-apt-repo-'));
  const repo = join(dir, 'repo');
  await mkdir(repo);
  const packageVersion = '1.0.0';
  const markerContent = opts.markerContent ?? `pveflow e2e marker ${process.pid}-${Date.now()}\n`;
  const debPath = join(repo, `${MARKER_PACKAGE}_${packageVersion}_all.deb`);
  try {
    await buildMarkerDeb(join(dir, 'pkg'), debPath, packageVersion, markerContent);
    // A flat repository: Packages (and its .gz) and a Release beside the .deb; the sources line's suite is "./".
    const { stdout: packages } = await run('apt-ftparchive', ['packages', '.'], { cwd: repo });
    await writeFile(join(repo, 'Packages'), packages);
    await run('gzip', ['-9nk', 'Packages'], { cwd: repo });
    const { stdout: release } = await run('apt-ftparchive', ['-o', 'APT::FTPArchive::Release::Origin=pveflow-e2e', 'release', '.'], { cwd: repo });
    await writeFile(join(repo, 'Release'), release);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  const requests: string[] = [];
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://repo').pathname);
    requests.push(path);
    const file = normalize(join(repo, path));
    if ((req.method !== 'GET' && req.method !== 'HEAD') || !file.startsWith(repo + '/')) {
      res.writeHead(404).end();
      return;
    }
    stat(file).then(
      (s) => {
        if (!s.isFile()) return void res.writeHead(404).end();
        res.writeHead(200, { 'content-length': s.size, 'content-type': 'application/octet-stream' });
        if (req.method === 'HEAD') return void res.end();
        createReadStream(file).pipe(res);
      },
      () => void res.writeHead(404).end(),
    );
  });
  const hostPort = await listen(server);
  const guestSourcesLine = `deb [trusted=yes] http://${APT_REPO_GUEST_ADDRESS}:${APT_REPO_GUEST_PORT}/ ./`;
  return {
    packageName: MARKER_PACKAGE,
    packageVersion,
    markerPath: MARKER_PATH,
    markerContent,
    hostUrl: `http://127.0.0.1:${hostPort}/`,
    hostPort,
    guestFwd: `guestfwd=tcp:${APT_REPO_GUEST_ADDRESS}:${APT_REPO_GUEST_PORT}-cmd:socat - TCP:127.0.0.1:${hostPort}`,
    guestSourcesLine,
    writeFile: { path: '/etc/apt/sources.list.d/pveflow-e2e.list', content: guestSourcesLine + '\n', permissions: '0644' },
    hostSourcesLine: `deb [trusted=yes] http://127.0.0.1:${hostPort}/ ./`,
    requests,
    debPath,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function buildMarkerDeb(root: string, debPath: string, version: string, markerContent: string): Promise<void> {
  await mkdir(join(root, 'DEBIAN'), { recursive: true });
  await mkdir(join(root, 'usr/share/pveflow-e2e'), { recursive: true });
  await writeFile(join(root, MARKER_PATH.slice(1)), markerContent);
  await chmod(join(root, MARKER_PATH.slice(1)), 0o644);
  await writeFile(
    join(root, 'DEBIAN/control'),
    [
      `Package: ${MARKER_PACKAGE}`,
      `Version: ${version}`,
      'Architecture: all',
      'Maintainer: pveflow tests <tests@pveflow.invalid>',
      'Section: misc',
      'Priority: optional',
      "Description: pveflow end-to-end test's marker",
      " Installs one file, so that a test can see a request's packages installed on a real guest.",
      '',
    ].join('\n'),
  );
  // --root-owner-group: the files are root's on the guest whoever built the package.
  await run('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', root, debPath]);
}

async function requireTools(): Promise<void> {
  for (const [tool, pkg] of [
    ['dpkg-deb', 'dpkg'],
    ['apt-ftparchive', 'apt-utils'],
  ] as const) {
    try {
      await run('sh', ['-c', `command -v ${tool}`]);
    } catch {
      throw new Error(`${tool} is not installed (apt-get install -y ${pkg}): the local Debian repository needs it`);
    }
  }
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}
