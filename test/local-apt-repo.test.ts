import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { parse } from 'yaml';
import { mergeUserData } from '../src/activities/snippets/userDataMerge';
import { cloudInitChoicesSchema } from '../src/domain/cloudInitChoices';
import { startLocalAptRepo, type LocalAptRepo } from './support/localAptRepo';

const run = promisify(execFile);

/**
 * The repository a real guest's `packages:` installs from, tried from this host the way the guest's apt will use it:
 * apt-get reads only the repository's sources line and keeps its lists, caches and status in a temporary directory,
 * so the host's own apt state is never touched.
 */
describe('local Debian repository for a guest', () => {
  let repo: LocalAptRepo;
  let dir: string;

  before(async () => {
    repo = await startLocalAptRepo();
    dir = await mkdtemp(join(tmpdir(), 'pveflow-apt-client-'));
  });
  after(async () => {
    await repo?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function isolatedApt(args: string[], cwd: string, tool: 'apt-get' | 'apt-cache' = 'apt-get') {
    const sources = join(dir, 'sources.list');
    await writeFile(sources, repo.hostSourcesLine + '\n');
    for (const d of ['lists/partial', 'cache/archives/partial', 'parts', 'etc/preferences.d']) await mkdir(join(dir, d), { recursive: true });
    await writeFile(join(dir, 'status'), '');
    const isolation = [
      `Dir::Etc::sourcelist=${sources}`,
      `Dir::Etc::sourceparts=${join(dir, 'parts')}`,
      `Dir::Etc::preferencesparts=${join(dir, 'etc/preferences.d')}`,
      `Dir::State::Lists=${join(dir, 'lists')}`,
      `Dir::State::status=${join(dir, 'status')}`,
      `Dir::Cache=${join(dir, 'cache')}`,
      'Dir::Cache::pkgcache=',
      'Dir::Cache::srcpkgcache=',
      // apt drops to _apt for downloads, which cannot write into root's private temporary directory.
      'APT::Sandbox::User=root',
      'Acquire::http::Proxy=DIRECT',
      'Acquire::Languages=none',
    ].flatMap((o) => ['-o', o]);
    return run(tool, [...isolation, ...args], { cwd });
  }

  it('serves an index and the package that apt-get downloads, and the package installs its marker', async () => {
    await isolatedApt(['update'], dir);
    const { stdout: policy } = await isolatedApt(['policy', repo.packageName], dir, 'apt-cache');
    assert.match(policy, new RegExp(`Candidate: ${repo.packageVersion.replaceAll('.', '\\.')}`), policy);

    const downloads = join(dir, 'downloads');
    await mkdir(downloads);
    await isolatedApt(['download', repo.packageName], downloads);
    const deb = join(downloads, `${repo.packageName}_${repo.packageVersion}_all.deb`);
    assert.deepEqual(await readFile(deb), await readFile(repo.debPath), 'apt-get downloaded the package the repository holds');
    assert.ok(repo.requests.includes('/Release') && repo.requests.some((p) => p.endsWith('.deb')), `requests: ${repo.requests.join(', ')}`);

    // Installed by dpkg into an empty root of its own, as on the guest (the package has no maintainer scripts).
    const root = join(dir, 'root');
    for (const d of ['var/lib/dpkg/updates', 'var/lib/dpkg/info']) await mkdir(join(root, d), { recursive: true });
    await writeFile(join(root, 'var/lib/dpkg/status'), '');
    await run('dpkg', [`--root=${root}`, '--force-not-root', '--force-script-chrootless', '--log=/dev/null', '-i', deb]);
    assert.equal(await readFile(join(root, repo.markerPath.slice(1)), 'utf8'), repo.markerContent);
    assert.match(await readFile(join(root, 'var/lib/dpkg/status'), 'utf8'), new RegExp(`Package: ${repo.packageName}\\nStatus: install ok installed`));
  });

  it('gives the guest a sources line through the guestfwd address, as a write_files entry pveflow accepts', () => {
    assert.equal(repo.guestSourcesLine, 'deb [trusted=yes] http://10.0.2.101:80/ ./');
    assert.equal(repo.guestFwd, `guestfwd=tcp:10.0.2.101:80-cmd:socat - TCP:127.0.0.1:${repo.hostPort}`);
    const choices = cloudInitChoicesSchema.safeParse({ packages: [repo.packageName], write_files: [repo.writeFile] });
    assert.ok(choices.success, JSON.stringify(choices.error?.issues));
    assert.equal(choices.data.write_files?.[0]?.defer, undefined, 'written before packages are installed');
    const merged = mergeUserData({ package_update: true, packages: ['qemu-guest-agent'], runcmd: [] }, choices.data);
    assert.deepEqual(merged.write_files, [repo.writeFile], 'the merge keeps the sources list');
    assert.deepEqual(merged.packages, ['qemu-guest-agent', repo.packageName]);
    assert.equal(merged.package_update, true, "pveflow's package_update refreshes the lists, this repository's included");
  });

  const cloudCfg = '/etc/cloud/cloud.cfg';
  it(
    "is in place before cloud-init installs packages: Debian's cloud-init writes files in its init stage, packages in its final one",
    { skip: !existsSync(cloudCfg) && !process.env.CI && 'cloud-init is not installed (apt-get install -y cloud-init)' },
    async () => {
      // The guest's cloud-init is Debian 12's package, as on this host (CI installs it): its stages, in order.
      const cfg = parse(await readFile(cloudCfg, 'utf8')) as Record<string, Array<string | string[]>>;
      const stage = (module: string) => ['cloud_init_modules', 'cloud_config_modules', 'cloud_final_modules'].findIndex((s) => cfg[s]?.some((m) => (Array.isArray(m) ? m[0] : m) === module));
      assert.equal(stage('write-files'), 0);
      assert.equal(stage('package-update-upgrade-install'), 2);
      assert.equal(stage('write-files-deferred'), 2, '"defer": true would write the list only after the packages');
    },
  );
});
