import { beforeAll, describe, expect, it } from 'vitest';
import { lintDashboard, lintExpression } from './dashboard-lint.ts';
import { parseDashboard } from './dashboards.ts';
import { parseMetricCatalogue, type MetricCatalogue } from './metric-catalogue.ts';

const DS = { type: 'prometheus', uid: 'openbell-prometheus' };

const doc = `
| Metric | Type | Labels | Meaning |
| --- | --- | --- | --- |
| \`openbell_events_applied_total\` | counter | \`type\` | events |
| \`openbell_lag_seconds\` | histogram | | lag |
| \`openbell_feed_clients\` | gauge | | traders |
`;

/** A minimal dashboard the lint accepts, to break one thing at a time. */
function dashboard(panel: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    uid: 'test',
    title: 'test',
    schemaVersion: 39,
    templating: {
      list: [
        {
          name: 'run',
          type: 'query',
          datasource: DS,
          query: { query: 'label_values(up, run)', refId: 'run' },
          includeAll: true,
          allValue: '.*',
        },
      ],
    },
    panels: [
      { type: 'row', title: 'a row', panels: [] },
      {
        id: 2,
        type: 'timeseries',
        title: 'Applied',
        datasource: DS,
        fieldConfig: { defaults: { unit: 'ops' }, overrides: [] },
        targets: [
          {
            refId: 'A',
            datasource: DS,
            expr: 'sum(rate(openbell_events_applied_total{run=~"$run"}[$__rate_interval]))',
          },
        ],
        openbellCheck: { reduce: 'max', min: 1 },
        ...panel,
      },
    ],
  };
}

const target = (expr: string) => ({ targets: [{ refId: 'A', datasource: DS, expr }] });

let catalogue: MetricCatalogue;
beforeAll(() => {
  catalogue = parseMetricCatalogue(doc);
});

describe('dashboard lint', () => {
  it('accepts a well-formed dashboard', () => {
    expect(lintDashboard(dashboard(), catalogue)).toEqual([]);
  });

  it('catches a bare counter', () => {
    const problems = lintDashboard(
      dashboard(target('sum(openbell_events_applied_total{run=~"$run"})')),
      catalogue,
    );
    expect(problems).toEqual([
      'panel "Applied": query A: counter openbell_events_applied_total is used without rate/increase/irate',
    ]);
  });

  it('catches histogram buckets outside rate, even under another function', () => {
    const expr = 'histogram_quantile(0.99, sum by (le) (openbell_lag_seconds_bucket{run=~"$run"}))';
    expect(lintExpression(expr, catalogue)).toEqual([
      'counter openbell_lag_seconds_bucket is used without rate/increase/irate',
    ]);
    expect(
      lintExpression('abs(rate(openbell_events_applied_total{run=~"$run"}[5m]))', catalogue),
    ).toEqual([]);
    expect(
      lintExpression(
        'max_over_time(abs(openbell_events_applied_total{run=~"$run"})[5m:])',
        catalogue,
      ),
    ).toHaveLength(1);
  });

  it('catches an expression that does not parse', () => {
    const problems = lintDashboard(
      dashboard(target('sum(rate(openbell_events_applied_total{run=~"$run"}[$__rate_interval])')),
      catalogue,
    );
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^panel "Applied": query A: does not parse/);
  });

  it('catches a missing unit and a missing title', () => {
    expect(lintDashboard(dashboard({ fieldConfig: { defaults: {} } }), catalogue)).toEqual([
      'panel "Applied": no unit (fieldConfig.defaults.unit)',
    ]);
    expect(lintDashboard(dashboard({ title: '' }), catalogue)).toEqual([
      'panel "": a panel has no title',
    ]);
  });

  it('catches unknown metrics, a missing run filter and a datasource by name', () => {
    expect(
      lintDashboard(dashboard(target('openbell_feed_clientz{run=~"$run"}')), catalogue),
    ).toEqual(['panel "Applied": query A: openbell_feed_clientz is not in docs/METRICS.md']);
    expect(lintDashboard(dashboard(target('openbell_feed_clients')), catalogue)).toEqual([
      'panel "Applied": query A: openbell_feed_clients is selected without run=~"$run"',
    ]);
    expect(lintDashboard(dashboard({ datasource: 'Prometheus' }), catalogue)).toEqual([
      'panel "Applied": datasource is not uid openbell-prometheus',
    ]);
  });

  it('accepts the metrics openbell does not define: up, RabbitMQ, probes, health', () => {
    for (const name of [
      'up',
      'rabbitmq_queue_messages_ready',
      'probe_success',
      'openbell_health_lag_p99',
    ])
      expect(lintExpression(`max(${name}{run=~"$run"})`, catalogue)).toEqual([]);
  });

  it('catches a missing run variable', () => {
    const broken = { ...dashboard(), templating: { list: [] } };
    expect(lintDashboard(broken, catalogue)).toEqual(['no run variable']);
  });

  it('catches a malformed openbellCheck and one whose query uses other variables', () => {
    expect(
      lintDashboard(dashboard({ openbellCheck: { reduce: 'p99', max: 1 } }), catalogue),
    ).toHaveLength(1);
    expect(lintDashboard(dashboard({ openbellCheck: { reduce: 'max' } }), catalogue)[0]).toMatch(
      /needs max or min/,
    );
    const withInstance = {
      ...target('sum(openbell_feed_clients{run=~"$run", instance=~"$instance"})'),
      openbellCheck: { reduce: 'max', max: 10 },
    };
    expect(lintDashboard(dashboard(withInstance), catalogue)).toEqual([
      'panel "Applied": openbellCheck: its query uses $instance',
    ]);
  });

  it('parses a dashboard for openbell check, and refuses a bad openbellCheck', () => {
    const parsed = parseDashboard(dashboard(), 'test.json');
    expect(parsed.panels).toEqual([
      {
        id: 2,
        type: 'timeseries',
        title: 'Applied',
        unit: 'ops',
        targets: [
          {
            refId: 'A',
            expr: 'sum(rate(openbell_events_applied_total{run=~"$run"}[$__rate_interval]))',
            legendFormat: undefined,
          },
        ],
        check: { reduce: 'max', min: 1 },
      },
    ]);
    expect(() =>
      parseDashboard(dashboard({ openbellCheck: { reduce: 'max', max: 'x' } }), 'bad.json'),
    ).toThrow(/bad\.json: panel "Applied": bad openbellCheck/);
  });
});
