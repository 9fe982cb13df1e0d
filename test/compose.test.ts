import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { ConfigError, configSchema, loadConfig, temporalTlsEnabled } from '../src/config';
import { isSecretKey, redactText } from '../src/observability';
import { searchAttributeDefinitions } from '../src/contracts/searchAttributes';

/**
 * The production topology as docker-compose.yml declares it. No Docker engine is needed: the file is parsed and its
 * shape checked; when the `docker compose` CLI is installed, `docker compose config` validates it too. That it runs
 * is the topology test's to show (test/topology.e2e.test.ts starts the same processes with the same environment).
 */
const root = resolve(__dirname, '..');
const composeText = readFileSync(join(root, 'docker-compose.yml'), 'utf8');

interface Service {
  image?: string;
  build?: string | { context: string };
  command?: string[] | string;
  entrypoint?: string[];
  volumes?: string[];
  environment?: Record<string, string>;
  env_file?: Array<string | { path: string; required?: boolean }>;
  depends_on?: Record<string, { condition: string }>;
  deploy?: { replicas?: number };
  ports?: string[];
  secrets?: string[];
}
const compose = parse(composeText, { merge: true }) as { services: Record<string, Service>; secrets?: Record<string, { file: string }> };
const services = compose.services;
const pveflowServices = ['api', 'worker'];

describe('docker-compose.yml', () => {
  test('Temporal on PostgreSQL, set up by the scripts an operator runs, its UI, the API and the workers', () => {
    assert.deepEqual(Object.keys(services).sort(), ['api', 'postgresql', 'temporal', 'temporal-schema', 'temporal-setup', 'temporal-ui', 'worker']);
    const temporal = services.temporal!;
    assert.match(temporal.image!, /^temporalio\/server:1\.32\.\d+$/, 'the release the topology test builds');
    assert.equal(temporal.environment!.DB, 'postgres12');
    assert.equal(temporal.environment!.POSTGRES_SEEDS, 'postgresql');
    assert.deepEqual(temporal.depends_on, { 'temporal-schema': { condition: 'service_completed_successfully' } });
    assert.match(services.postgresql!.image!, /^postgres:\d+$/);
    for (const [name, script] of [
      ['temporal-schema', 'setup-schema.sh'],
      ['temporal-setup', 'register-namespace.sh'],
    ] as const) {
      assert.deepEqual(services[name]!.entrypoint, ['sh', `/etc/pveflow/temporal/${script}`], name);
      assert.ok(existsSync(join(root, 'deploy', 'temporal', script)), `deploy/temporal/${script}`);
      assert.deepEqual(services[name]!.volumes, ['./deploy/temporal:/etc/pveflow/temporal:ro'], name);
    }
    assert.ok(existsSync(join(root, 'deploy', 'temporal', 'dynamicconfig.yaml')));
  });

  test('every variable compose gives the API and the workers is one pveflow reads, and what production needs is there', () => {
    const known = new Set(Object.keys(configSchema.shape));
    for (const name of pveflowServices) {
      const env = services[name]!.environment!;
      for (const key of Object.keys(env)) assert.ok(known.has(key), `${name}.${key} is not a pveflow setting (src/config.ts)`);
      for (const key of ['NODE_ENV', 'TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'TEMPORAL_TASK_QUEUE', 'PVEFLOW_CODEC_KEY_FILE']) assert.ok(env[key], `${name} sets ${key}`);
    }
    assert.ok(services.api!.environment!.API_KEYS_FILE, 'the API never runs open');
  });

  test('the API and at least two workers run from the one image the Dockerfile builds', () => {
    const api = services.api!;
    const worker = services.worker!;
    assert.equal(api.image, worker.image);
    assert.equal(api.build, '.');
    assert.equal(worker.build, '.');
    assert.ok((worker.deploy?.replicas ?? 1) >= 2, 'two workers or more');
    assert.deepEqual(worker.command, ['node_modules/.bin/tsx', 'src/worker.ts']);
    for (const name of pveflowServices) {
      const s = services[name]!;
      assert.equal(s.environment!.TEMPORAL_ADDRESS, 'temporal:7233', name);
      assert.equal(s.environment!.NODE_ENV, 'production', name);
      assert.deepEqual(
        s.depends_on,
        {
          temporal: { condition: 'service_started' },
          'temporal-setup': { condition: 'service_completed_successfully' },
        },
        name,
      );
    }
  });

  test('every entry point a service runs exists in the repository', () => {
    const entries = pveflowServices.map((n) => [n, (services[n]!.command as string[])[1]!] as const);
    for (const [name, entry] of entries) assert.ok(existsSync(join(root, entry)), `${name} runs ${entry}, which does not exist`);
  });

  test("Temporal UI is reached through pveflow's gateway, which serves the UI's relative codec endpoint", () => {
    const ui = services['temporal-ui']!;
    assert.equal(ui.environment!.TEMPORAL_CODEC_ENDPOINT, '/codec');
    assert.equal(ui.ports, undefined, 'not published: only the gateway reaches it');
    const api = services.api!.environment!;
    assert.equal(api.TEMPORAL_UI_URL, `http://temporal-ui:${ui.environment!.TEMPORAL_UI_PORT}`);
    assert.ok(services.api!.ports!.includes(`127.0.0.1:${api.TEMPORAL_UI_PORT}:${api.TEMPORAL_UI_PORT}`), 'the gateway is published on loopback');
    assert.ok(services.api!.ports!.some((p) => p.endsWith(':3000')));
  });

  test('no secret is written in the file: secrets come from pveflow.env, .env and secrets/', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const [key, value] of Object.entries(s.environment ?? {})) {
        if (/_FILE$/.test(key) || String(value).startsWith('/run/secrets/')) continue; // a path to a secret, not the secret
        if (value === 'true' || value === 'false') continue; // a switch (TEMPORAL_CODEC_INCLUDE_CREDENTIALS)
        if (isSecretKey(key) || /PASSWORD|PWD/.test(key)) {
          assert.match(String(value), /^\$\{[A-Z_]+(:\?[^}]*|:-(true|false))?\}$/, `${name}.${key} must come from the environment, not be written here`);
        }
      }
      assert.ok(!('PVE_TOKEN_SECRET' in (s.environment ?? {})) && !('NETBIRD_TOKEN' in (s.environment ?? {})), name);
    }
    assert.equal(redactText(composeText), composeText, 'nothing in the file has the shape of a secret');
  });

  test("each service gets only the secrets it uses: the API's container has no Proxmox, SSH or NetBird secret", () => {
    const api = services.api!;
    const worker = services.worker!;
    assert.deepEqual(api.env_file, [{ path: './pveflow.env', required: true }]);
    assert.deepEqual(api.secrets, ['pveflow_codec_keys', 'temporal_ca', 'temporal_client_cert', 'temporal_client_key', 'pveflow_api_keys']);
    for (const key of Object.keys(api.environment!)) assert.doesNotMatch(key, /^(PVE|SSH|NETBIRD)_/, `api.${key}`);
    assert.deepEqual(worker.env_file, [
      { path: './pveflow.env', required: true },
      { path: './worker.env', required: true },
    ]);
    assert.deepEqual(worker.secrets, ['pve_ca', 'pveflow_ssh_key', 'pveflow_codec_keys', 'temporal_ca', 'temporal_client_cert', 'temporal_client_key']);
    assert.equal(worker.environment!.PVE_CA_FILE, '/run/secrets/pve_ca');
    assert.equal(worker.environment!.SSH_PRIVATE_KEY_FILE, '/run/secrets/pveflow_ssh_key');

    // What an operator writes in each file, as docs/operations.md shows it: the cluster's secrets only in worker.env.
    const operations = readFileSync(join(root, 'docs', 'operations.md'), 'utf8');
    const keysOf = (file: string) => {
      const block = new RegExp('```sh\\n# ' + file.replace('.', '\\.') + '[^\\n]*\\n([\\s\\S]*?)```').exec(operations);
      assert.ok(block, `docs/operations.md shows ${file}`);
      return [...block[1]!.matchAll(/^([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]!);
    };
    const shared = keysOf('pveflow.env');
    const workers = keysOf('worker.env');
    for (const key of shared) assert.doesNotMatch(key, /^(PVE_(ENDPOINT|TOKEN|CA|FINGERPRINT)|SSH_|NETBIRD_)/, `pveflow.env (the API's too) holds ${key}`);
    for (const key of ['PVE_ENDPOINT', 'PVE_TOKEN_ID', 'PVE_TOKEN_SECRET', 'SSH_NODES', 'NETBIRD_TOKEN']) assert.ok(workers.includes(key), `worker.env holds ${key}`);
    assert.ok(shared.includes('METRICS_TOKEN'));
  });

  test("Temporal's frontend requires a client certificate of the deployment's CA, and every client presents one", () => {
    const temporal = services.temporal!.environment!;
    assert.equal(temporal.TEMPORAL_TLS_REQUIRE_CLIENT_AUTH, 'true');
    for (const key of ['TEMPORAL_TLS_FRONTEND_CERT', 'TEMPORAL_TLS_FRONTEND_KEY', 'TEMPORAL_TLS_SERVER_CERT', 'TEMPORAL_TLS_SERVER_KEY', 'TEMPORAL_TLS_CLIENT1_CA_CERT', 'TEMPORAL_TLS_SERVER_CA_CERT']) {
      assert.match(temporal[key] ?? '', /^\/run\/secrets\/temporal_/, `temporal.${key}`);
    }
    // pveflow's processes and the namespace's set-up: Temporal's CLI's variables; Temporal UI: the temporalio/ui image's.
    const clientKeys = { api: 'TEMPORAL_TLS_CLIENT_CERT_PATH', worker: 'TEMPORAL_TLS_CLIENT_CERT_PATH', 'temporal-setup': 'TEMPORAL_TLS_CLIENT_CERT_PATH', 'temporal-ui': 'TEMPORAL_TLS_CERT' };
    for (const [name, certKey] of Object.entries(clientKeys)) {
      const s = services[name]!;
      assert.equal(s.environment![certKey], '/run/secrets/temporal_client_cert', `${name} presents the client certificate`);
      for (const secret of ['temporal_ca', 'temporal_client_cert', 'temporal_client_key']) assert.ok(s.secrets?.includes(secret), `${name} mounts ${secret}`);
    }
    for (const secret of ['temporal_ca', 'temporal_server_cert', 'temporal_server_key', 'temporal_client_cert', 'temporal_client_key']) assert.match(compose.secrets![secret]!.file, /^\.\/secrets\/temporal\//);
    assert.ok(!services.worker!.secrets!.includes('temporal_server_key'), "the server's key stays with the server");

    // What pveflow makes of compose's variables in production: mTLS; without them, a refusal.
    for (const name of pveflowServices) {
      const env = { ...services[name]!.environment!, METRICS_TOKEN: 'placeholder-metrics-token' };
      assert.equal(temporalTlsEnabled(loadConfig(env)), true, name);
      const plain = Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('TEMPORAL_TLS')));
      assert.throws(
        () => loadConfig(plain),
        (err: Error) => err instanceof ConfigError && /without TLS is refused when NODE_ENV=production/.test(err.message),
        name,
      );
    }
  });

  test('deploy/temporal-cloud.compose.yml: Temporal Cloud with an API key from a secret, TLS with the system CAs, no self-hosted Temporal', () => {
    // Compose's merge tags, resolved as compose does for this file: `!reset` removes, `!override` replaces.
    const text = readFileSync(join(root, 'deploy', 'temporal-cloud.compose.yml'), 'utf8');
    const cloud = parse(text.replace(/!reset (null|\{\})/g, '"!reset"').replace(/!override /g, ''), { merge: true }) as { services: Record<string, Service>; secrets: Record<string, { file: string }> };
    assert.deepEqual(cloud.secrets, { temporal_api_key: { file: './secrets/temporal-api-key' } });
    for (const name of pveflowServices) {
      const over = cloud.services[name]!;
      assert.equal(over.depends_on as unknown, '!reset', `${name} does not wait for the self-hosted Temporal`);
      const merged = Object.fromEntries(Object.entries({ ...services[name]!.environment!, ...over.environment! }).filter(([, v]) => v !== '!reset'));
      assert.equal(merged.TEMPORAL_API_KEY_FILE, '/run/secrets/temporal_api_key', name);
      assert.ok(over.secrets!.includes('temporal_api_key') && !over.secrets!.some((s) => s.startsWith('temporal_client')), name);
      const env = { ...merged, TEMPORAL_ADDRESS: 'pveflow.a1b2c.tmprl.cloud:7233', TEMPORAL_NAMESPACE: 'pveflow.a1b2c', METRICS_TOKEN: 'placeholder-metrics-token' };
      const config = loadConfig(env);
      assert.equal(temporalTlsEnabled(config), true, `${name}: TLS, implied by the API key`);
      assert.equal(config.TEMPORAL_TLS_CLIENT_CERT_PATH, undefined, `${name}: no self-hosted client certificate`);
      assert.equal(config.TEMPORAL_TLS_SERVER_CA_CERT_PATH, undefined, `${name}: the system CAs`);
    }
    assert.match(text, /^\s*TEMPORAL_ADDRESS: \$\{TEMPORAL_CLOUD_ADDRESS:\?/m, 'the address from .env');
  });

  test('the search attributes registered are exactly those the workflows define', () => {
    const cliType: Record<string, string> = {
      KEYWORD: 'Keyword',
      TEXT: 'Text',
      INT: 'Int',
      DOUBLE: 'Double',
      BOOL: 'Bool',
      DATETIME: 'Datetime',
      KEYWORD_LIST: 'KeywordList',
    };
    const script = readFileSync(join(root, 'deploy', 'temporal', 'register-namespace.sh'), 'utf8');
    const declared = /^attributes="([^"]+)"$/m.exec(script)![1]!.split(' ').sort();
    const expected = searchAttributeDefinitions.map((k) => `${k.name}=${cliType[k.type]}`).sort();
    assert.deepEqual(declared, expected);
  });

  test('the Dockerfile builds from the lockfile without the tools download, and runs as non-root', () => {
    const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
    assert.match(dockerfile, /^FROM node:20-slim$/m);
    assert.match(dockerfile, /PVEFLOW_SKIP_TOOLS=1/);
    assert.match(dockerfile, /^RUN npm ci\b/m);
    assert.match(dockerfile, /^USER node$/m);
    const ignore = readFileSync(join(root, '.dockerignore'), 'utf8').split('\n');
    for (const entry of ['node_modules', '.data', 'secrets', '*.env', '.env*', '.git']) assert.ok(ignore.includes(entry), entry);
  });

  test('every file the postinstall script runs is copied into the image before npm ci runs it', () => {
    const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
    const postinstall = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.postinstall!;
    const scripts = [...postinstall.matchAll(/\bnode\s+(\S+)/g)].map((m) => m[1]!);
    assert.ok(scripts.length > 0, postinstall);
    const npmCi = dockerfile.search(/^RUN npm ci\b/m);
    const copiedBefore = [...dockerfile.slice(0, npmCi).matchAll(/^COPY\s+(.+)\s+\S+$/gm)].flatMap((m) => m[1]!.split(/\s+/));
    for (const script of scripts) assert.ok(copiedBefore.includes(script), `${script} (run by postinstall) is copied before RUN npm ci`);
  });

  /**
   * `docker compose config` when the plugin is installed; else the same loader it is built on (compose-go: the
   * Compose specification's schema, interpolation, required variables), built by .ci/run from
   * scripts/compose-config into .tools/bin. CI must have one of the two.
   */
  const composeConfig = (): { command: string; args: string[] } | string => {
    const version = spawnSync('docker', ['compose', 'version'], { encoding: 'utf8', timeout: 10_000 });
    if (version.status === 0) return { command: 'docker', args: ['compose', 'config', '--quiet'] };
    const built = join(root, '.tools', 'bin', 'compose-config');
    if (existsSync(built)) return { command: built, args: ['docker-compose.yml'] };
    return `neither docker compose (${(version.stderr || version.error?.message || '').trim().split('\n')[0]}) nor ${built} (go build -o .tools/bin/compose-config ./scripts/compose-config)`;
  };

  /** A scratch project with placeholder files: config checks that they exist, not what they hold. */
  function withScratchProject<T>(composeYaml: string, env: string, fn: (dir: string) => T): T {
    const dir = mkdtempSync(join(tmpdir(), 'pveflow-compose-'));
    try {
      writeFileSync(join(dir, 'docker-compose.yml'), composeYaml);
      copyFileSync(join(root, 'Dockerfile'), join(dir, 'Dockerfile'));
      writeFileSync(join(dir, '.env'), env);
      writeFileSync(join(dir, 'pveflow.env'), 'METRICS_TOKEN=placeholder-metrics-token\n');
      writeFileSync(join(dir, 'worker.env'), 'PVE_ENDPOINT=https://pve.example:8006\n');
      mkdirSync(join(dir, 'secrets'));
      for (const f of ['pve-root-ca.pem', 'ssh_key', 'codec-keys.json', 'api-keys.json']) writeFileSync(join(dir, 'secrets', f), '');
      mkdirSync(join(dir, 'secrets', 'temporal'));
      for (const f of ['ca.pem', 'server.pem', 'server.key', 'client.pem', 'client.key']) writeFileSync(join(dir, 'secrets', 'temporal', f), '');
      writeFileSync(join(dir, 'secrets', 'temporal-api-key'), '');
      mkdirSync(join(dir, 'deploy'));
      copyFileSync(join(root, 'deploy', 'temporal-cloud.compose.yml'), join(dir, 'deploy', 'temporal-cloud.compose.yml'));
      return fn(dir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  test('`docker compose config` accepts the file, and refuses it without the database password or with a misspelt key', (t) => {
    const checker = composeConfig();
    if (typeof checker === 'string') {
      if (process.env.CI) assert.fail(`CI must validate docker-compose.yml: ${checker}`);
      t.skip(`${checker}; the YAML structure is checked by the tests above`);
      return;
    }
    const run = (dir: string) => spawnSync(checker.command, checker.args, { cwd: dir, encoding: 'utf8', timeout: 60_000, env: { PATH: process.env.PATH } });
    const ok = withScratchProject(composeText, 'POSTGRES_PASSWORD=placeholder-for-config-check\n', run);
    assert.equal(ok.status, 0, ok.stderr);
    const noPassword = withScratchProject(composeText, '', run);
    assert.notEqual(noPassword.status, 0, 'the database password is required');
    assert.match(noPassword.stderr, /POSTGRES_PASSWORD/);
    const misspelt = withScratchProject(composeText.replace(/^(  worker:\n)/m, '$1    restrat: always\n'), 'POSTGRES_PASSWORD=x\n', run);
    assert.notEqual(misspelt.status, 0, 'an unknown key is refused');
    assert.match(misspelt.stderr, /restrat/);
  });

  test('`docker compose config` merges deploy/temporal-cloud.compose.yml: the API key instead of the client certificate, no self-hosted Temporal to wait for', (t) => {
    const checker = composeConfig();
    if (typeof checker === 'string') {
      if (process.env.CI) assert.fail(`CI must validate the compose files: ${checker}`);
      t.skip(checker);
      return;
    }
    const files = ['docker-compose.yml', 'deploy/temporal-cloud.compose.yml'];
    const args = checker.command === 'docker' ? ['compose', ...files.flatMap((f) => ['-f', f]), 'config'] : files;
    const env = 'POSTGRES_PASSWORD=x\nTEMPORAL_CLOUD_ADDRESS=pveflow.a1b2c.tmprl.cloud:7233\nTEMPORAL_CLOUD_NAMESPACE=pveflow.a1b2c\n';
    const result = withScratchProject(composeText, env, (dir) => spawnSync(checker.command, args, { cwd: dir, encoding: 'utf8', timeout: 60_000, env: { PATH: process.env.PATH } }));
    assert.equal(result.status, 0, result.stderr);
    const merged = parse(result.stdout) as { services: Record<string, Omit<Service, 'secrets'> & { secrets?: Array<string | { source: string }> }> };
    for (const name of pveflowServices) {
      const s = merged.services[name]!;
      assert.equal(s.depends_on, undefined, `${name} waits for no self-hosted Temporal`);
      assert.equal(s.environment!.TEMPORAL_API_KEY_FILE, '/run/secrets/temporal_api_key', name);
      assert.equal(s.environment!.TEMPORAL_ADDRESS, 'pveflow.a1b2c.tmprl.cloud:7233', name);
      for (const gone of ['TEMPORAL_TLS_SERVER_CA_CERT_PATH', 'TEMPORAL_TLS_SERVER_NAME', 'TEMPORAL_TLS_CLIENT_CERT_PATH', 'TEMPORAL_TLS_CLIENT_KEY_PATH'])
        assert.ok(!(gone in s.environment!), `${name}: ${gone} is reset`);
      const secrets = (s.secrets ?? []).map((x) => (typeof x === 'string' ? x : x.source));
      assert.ok(secrets.includes('temporal_api_key') && !secrets.some((x) => x.startsWith('temporal_client')), `${name}: ${secrets.join(', ')}`);
      // worker.env's placeholder endpoint aside (its token is not in the scratch file).
      const { PVE_ENDPOINT: _fromEnvFile, ...environment } = s.environment as Record<string, string>;
      const config = loadConfig({ ...environment, METRICS_TOKEN: 'placeholder-metrics-token' });
      assert.equal(temporalTlsEnabled(config), true, `${name}: production accepts it, over TLS`);
    }
  });
});
