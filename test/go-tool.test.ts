import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';

/**
 * scripts/lib/go-tool.sh, the build every install-<tool>.sh shares, driven the way they drive it on a module of the
 * test's own (no dependencies, so no module proxy): built once, a re-run with the same recipe runs no build, a
 * missing binary or a changed recipe builds again. The install scripts themselves are the lib plus their pins: each
 * must hand the lib its build function and binaries, which the second test checks.
 */
const root = resolve(__dirname, '..');

describe('the shared Go tool build (scripts/lib/go-tool.sh)', () => {
  let dir: string;
  let tools: string;
  let src: string;
  const binary = () => join(tools, 'hello', 'bin', 'hello');

  before(() => {
    const go = spawnSync('go', ['version'], { encoding: 'utf8' });
    assert.equal(go.status, 0, 'Go is needed to build the test tools (https://go.dev/dl, or apt-get install -y golang)');
    dir = mkdtempSync(join(tmpdir(), 'pveflow-go-tool-'));
    tools = join(dir, 'tools');
    src = join(dir, 'hello');
    mkdirSync(src);
    writeFileSync(join(src, 'go.mod'), 'module example.com/hello\n\ngo 1.21\n');
    writeFileSync(join(src, 'main.go'), 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello 1") }\n');
    // An install script as scripts/install-dex.sh is written, beside the test's module.
    writeFileSync(
      join(dir, 'install-hello.sh'),
      [
        'set -euo pipefail',
        `source ${JSON.stringify(join(root, 'scripts/lib/go-tool.sh'))}`,
        `src=${JSON.stringify(src)}`,
        'build_hello() { go_tool_build "$1/hello" 0 "$src" . ; }',
        'go_tool_install hello "hello=$(go_tool_hash "$src/go.mod" "$src/main.go")" build_hello hello',
      ].join('\n'),
    );
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const install = (env: Record<string, string> = {}) => {
    const run = spawnSync('bash', [join(dir, 'install-hello.sh')], {
      encoding: 'utf8',
      // No network: the module has no dependencies, and the toolchain is the one installed.
      env: { ...process.env, PVEFLOW_TOOLS_DIR: tools, GOPROXY: 'off', GOTOOLCHAIN: 'local', GOFLAGS: '', FORCE: '', ...env },
    });
    assert.equal(run.status, 0, run.stderr);
    return run.stdout;
  };
  const says = () => spawnSync(binary(), { encoding: 'utf8' }).stdout.trim();

  test('builds once; a re-run with the same recipe builds nothing; a missing binary or a new recipe builds again', () => {
    assert.match(install(), /install-hello: ready in /);
    assert.equal(says(), 'hello 1');
    assert.match(readFileSync(join(tools, 'hello', '.stamp'), 'utf8'), /^hello=[0-9a-f]{16} build=[0-9a-f]{16}\n$/);

    const built = statSync(binary());
    const again = install();
    assert.match(again, /install-hello: up to date in /);
    assert.doesNotMatch(again, /built in/);
    const after = statSync(binary());
    assert.equal(after.ino, built.ino, 'the binary is the one built before');
    assert.equal(after.mtimeMs, built.mtimeMs, 'the binary is the one built before');

    rmSync(binary());
    assert.match(install(), /hello built in/);
    assert.equal(says(), 'hello 1');

    writeFileSync(join(src, 'main.go'), 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("hello 2") }\n');
    assert.match(install(), /hello built in/);
    assert.equal(says(), 'hello 2');

    assert.match(install({ FORCE: '1' }), /hello built in/);
  });

  test('a build that does not make the binary it promised fails and leaves no stamp', () => {
    const script = join(dir, 'install-broken.sh');
    writeFileSync(script, [`source ${JSON.stringify(join(root, 'scripts/lib/go-tool.sh'))}`, 'set -euo pipefail', 'build_nothing() { :; }', 'go_tool_install broken "broken=1" build_nothing broken'].join('\n'));
    const run = spawnSync('bash', [script], { encoding: 'utf8', env: { ...process.env, PVEFLOW_TOOLS_DIR: tools } });
    assert.notEqual(run.status, 0);
    assert.match(run.stderr, /install-broken: the build did not make bin\/broken/);
    assert.throws(() => statSync(join(tools, 'broken', '.stamp')));
  });

  test('each install script builds its tool through the shared lib', () => {
    for (const [script, tool] of [
      ['install-dex.sh', 'dex'],
      ['install-netbird.sh', 'netbird'],
      ['install-toxiproxy.sh', 'toxiproxy'],
    ] as const) {
      const text = readFileSync(join(root, 'scripts', script), 'utf8');
      assert.match(text, /^source "\$\(dirname "\$0"\)\/lib\/go-tool\.sh"$/m, script);
      assert.match(text, new RegExp(`^go_tool_install ${tool} `, 'm'), script);
      const commands = text.split('\n').filter((line) => !line.trimStart().startsWith('#'));
      assert.ok(!commands.some((line) => /\bgo (build|install)\b/.test(line)), `${script} builds through the lib, not on its own`);
    }
  });
});
