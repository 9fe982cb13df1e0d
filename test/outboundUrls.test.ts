import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig, outboundUrlSettings } from '../src/config';

/** Production and plain http: every URL pveflow (or a guest it builds) sends something to must be https://. */
describe('production refuses http:// for every outbound URL', () => {
  const production = { NODE_ENV: 'production', PVEFLOW_CODEC_KEYS: `k1:${Buffer.alloc(32, 1).toString('base64')}`, METRICS_TOKEN: 'metrics-token-0123456789' };
  const needs: Record<string, Record<string, string>> = {
    PVE_ENDPOINT: { PVE_TOKEN_ID: 'pveflow@pve!automation', PVE_TOKEN_SECRET: 'x' },
    NETBIRD_API_URL: { NETBIRD_TOKEN: 'x' },
  };

  test('the list names the URLs the workers, the API and the guests reach', () => {
    assert.deepEqual([...outboundUrlSettings].sort(), ['NETBIRD_API_URL', 'NETBIRD_MANAGEMENT_URL', 'OTEL_EXPORTER_OTLP_ENDPOINT', 'PVE_ENDPOINT', 'REQUEST_NOTICE_WEBHOOK_URL']);
  });

  for (const name of outboundUrlSettings) {
    test(`${name}=http://... is a configuration error in production, unless PVEFLOW_ALLOW_HTTP names it`, () => {
      const env = { ...production, ...needs[name], [name]: 'http://somewhere.example:8080/x' };
      assert.throws(
        () => loadConfig(env),
        (e: Error) => e instanceof ConfigError && new RegExp(`${name}=http://somewhere\\.example:8080/x is refused when NODE_ENV=production: use https://.*PVEFLOW_ALLOW_HTTP=${name}`).test(e.message),
      );
      assert.doesNotThrow(() => loadConfig({ ...env, [name]: 'https://somewhere.example:8080/x' }));
      assert.doesNotThrow(() => loadConfig({ ...env, PVEFLOW_ALLOW_HTTP: `OTEL_EXPORTER_OTLP_ENDPOINT,${name}` }), 'allowed explicitly, by name');
      assert.doesNotThrow(() => loadConfig({ ...needs[name], [name]: 'http://somewhere.example:8080/x' }), 'development may use http (the simulators, a lab)');
    });
  }

  test('PVEFLOW_ALLOW_HTTP takes only the names of outbound URL settings', () => {
    assert.throws(
      () => loadConfig({ ...production, PVEFLOW_ALLOW_HTTP: 'PVE_TOKEN_SECRET' }),
      (e: Error) => e instanceof ConfigError && /PVEFLOW_ALLOW_HTTP/.test(e.message),
    );
  });
});
