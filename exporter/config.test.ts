import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  formatKeyPath,
  loadExporterConfig,
  parseAllowedTargets,
  parseExporterConfig,
} from './config.ts';

const metric = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({
  name: 'm',
  path: '{.a}',
  ...extra,
});
const withMetrics = (...metrics: unknown[]): unknown => ({ modules: { openbell: { metrics } } });
const errorOf = (input: unknown): string => {
  try {
    parseExporterConfig(input);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('the config was accepted');
};

describe('parseExporterConfig', () => {
  it('names the key path of a bad valuetype', () => {
    const input = withMetrics(metric(), metric(), metric({ valuetype: 'histogram' }));
    expect(errorOf(input)).toContain(
      'modules.openbell.metrics[2].valuetype: expected gauge|counter|untyped',
    );
  });

  it('names an allowedTargets entry that is not a regular expression', () => {
    const input = { modules: { openbell: { metrics: [metric()], allowedTargets: ['ok', '(('] } } };
    expect(errorOf(input)).toContain(
      'modules.openbell.allowedTargets[1]: expected a regular expression',
    );
  });

  it('rejects unknown keys at every level, naming each', () => {
    const message = errorOf({
      modules: {
        openbell: {
          metrics: [metric({ colour: 'red' })],
          http_client_config: { tls_config: { ca: 'x' }, oauth2: {} },
          extra: 1,
        },
      },
      global: {},
    });
    expect(message).toContain('global: unknown key');
    expect(message).toContain('modules.openbell.extra: unknown key');
    expect(message).toContain('modules.openbell.metrics[0].colour: unknown key');
    expect(message).toContain('modules.openbell.http_client_config.oauth2: unknown key');
    expect(message).toContain('modules.openbell.http_client_config.tls_config.ca: unknown key');
  });

  it('fills json_exporter defaults', () => {
    const config = parseExporterConfig(withMetrics(metric()));
    const module = config.modules['openbell']!;
    expect(module.metrics[0]).toMatchObject({
      type: 'value',
      valuetype: 'untyped',
      labels: {},
      allow_missing_key: false,
    });
    expect(module.headers).toEqual({});
    expect(module.http_client_config.follow_redirects).toBe(true);
  });

  it('accepts a json_exporter example config', () => {
    const config = parseExporterConfig({
      modules: {
        default: {
          headers: { 'X-Dummy': 'my-test-header' },
          metrics: [
            {
              name: 'example_global_value',
              path: '{ .counter }',
              help: 'Example of a top-level global value scrape in the json',
              labels: { environment: 'beta', location: 'planet-{ .location }' },
            },
            {
              name: 'example_value',
              type: 'object',
              path: '{ .values[?(@.state == "ACTIVE")] }',
              labels: { environment: 'beta', id: '{ .id }' },
              values: { active: 1, count: '{ .count }', boolean: '{ .some_boolean }' },
              valueconverter: { '{.state}': { ACTIVE: 1 } },
            },
            { name: 'ts', path: '{.v}', epochTimestamp: '{ .timestamp }', valuetype: 'gauge' },
          ],
          http_client_config: {
            basic_auth: { username: 'u', password_file: '/tmp/x' },
            tls_config: { insecure_skip_verify: true },
          },
          valid_status_codes: [200, 503],
          body: { content: '{"a": 1}' },
        },
      },
    });
    expect(config.modules['default']!.metrics).toHaveLength(3);
  });

  it('explains rules that span keys', () => {
    const cases: [unknown, string][] = [
      [withMetrics(metric({ values: { a: '{.a}' } })), 'metrics[0].values: only for type: object'],
      [withMetrics(metric({ type: 'object' })), 'metrics[0].values: required for type: object'],
      [
        withMetrics(metric({ type: 'object', keyLabel: 'k', labels: { k: 'x' } })),
        'metrics[0].keyLabel: "k" is also a key of labels',
      ],
      [withMetrics(metric({ name: 'probe_success' })), 'is reserved for the exporter'],
      [withMetrics(metric({ path: '{range .items[*]}' })), 'metrics[0].path: bad path'],
      [withMetrics(metric({ path: '{.a[?(@.b ==)]}' })), 'metrics[0].path: bad path: filter'],
      [withMetrics(metric({ labels: { 'bad-name': 'x' } })), 'metrics[0].labels.bad-name'],
      [withMetrics(metric({ labels: { __x: 'x' } })), 'reserved'],
      [withMetrics(metric({ engine: 'cel' })), 'engine: expected jsonpath (CEL is not supported)'],
      [
        withMetrics(metric({ valueMap: { ok: 'yes' } })),
        'metrics[0].valueMap.ok: expected a number',
      ],
      [withMetrics(metric({ scale: 0 })), 'metrics[0].scale: expected a finite, non-zero number'],
      [withMetrics(), 'modules.openbell.metrics: expected at least one metric'],
    ];
    for (const [input, expected] of cases) expect(errorOf(input)).toContain(expected);
  });

  it('rejects one family declared with two value types', () => {
    const message = errorOf(
      withMetrics(
        metric({ valuetype: 'gauge' }),
        metric({ valuetype: 'counter', path: '{.b}', labels: { x: 'y' } }),
      ),
    );
    expect(message).toContain('metrics[1].valuetype: "m" is already a gauge (metrics[0])');
  });

  it('checks http_client_config like Prometheus does', () => {
    const module = (http: unknown, extra: Record<string, unknown> = {}): unknown => ({
      modules: { m: { metrics: [metric()], http_client_config: http, ...extra } },
    });
    expect(errorOf(module({ basic_auth: { username: 'u' }, bearer_token: 't' }))).toContain(
      'modules.m.http_client_config: at most one of basic_auth, authorization, bearer_token(_file)',
    );
    expect(errorOf(module({ tls_config: { cert_file: 'c' } }))).toContain(
      'tls_config: cert_file and key_file go together',
    );
    expect(errorOf(module({}, { body: { content: 'x', templatize: true } }))).toContain(
      'modules.m.body.templatize: templatize (Go templates) is not supported',
    );
    expect(errorOf(module({}, { valid_status_codes: [99] }))).toContain(
      'modules.m.valid_status_codes[0]',
    );
  });
});

describe('loadExporterConfig', () => {
  it('loads the shipped openbell module', () => {
    const { config, baseDir } = loadExporterConfig('exporter/openbell.yml');
    expect(config.modules['openbell']!.metrics.length).toBeGreaterThan(10);
    expect(baseDir).toMatch(/exporter$/);
  });

  it('names the file in YAML and validation errors', () => {
    const dir = mkdtempSync(join(tmpdir(), 'exporter-config-'));
    try {
      const file = join(dir, 'bad.yml');
      writeFileSync(file, 'modules: [\n');
      expect(() => loadExporterConfig(file)).toThrow(file);
      writeFileSync(
        file,
        'modules:\n  m:\n    metrics:\n      - { name: a, path: "{.a}", help: 3 }\n',
      );
      expect(() => loadExporterConfig(file)).toThrow(`${file}: invalid exporter config`);
      expect(() => loadExporterConfig(file)).toThrow('modules.m.metrics[0].help');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('formatKeyPath', () => {
  it('writes indexes in brackets and keys with dots', () => {
    expect(formatKeyPath(['modules', 'a', 'metrics', 2, 'valuetype'])).toBe(
      'modules.a.metrics[2].valuetype',
    );
    expect(formatKeyPath([])).toBe('');
  });
});

describe('parseAllowedTargets', () => {
  it('splits regular expressions on white space, keeping commas inside them', () => {
    expect(parseAllowedTargets(' http://mdp:8080/health\n  http://a{1,2}/x ')).toEqual([
      'http://mdp:8080/health',
      'http://a{1,2}/x',
    ]);
  });

  it('names one that does not compile, and refuses none', () => {
    expect(() => parseAllowedTargets('ok ((')).toThrow('"((": not a regular expression');
    expect(() => parseAllowedTargets('  ')).toThrow('expected at least one regular expression');
  });
});
