import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { PanelCheck } from '../grafana/check-schema.ts';
import type { Dashboard, DashboardPanel } from '../grafana/dashboards.ts';
import {
  checkVariables,
  evaluateReport,
  judgeBaseline,
  judgeBounds,
  parsePromDuration,
  rateIntervalSeconds,
  readScrapeIntervalS,
  reduceSeries,
  stepSeconds,
  worstOf,
  type CheckReport,
  type PanelResult,
  type RangeSeries,
} from './check.ts';
import {
  formatCheckTable,
  formatThreshold,
  formatValue,
  serializeCheckReport,
} from './check-format.ts';
import { findCheckJsonPanel, parseCheckJson } from './check-main.ts';

const LAG_EXPR =
  'histogram_quantile(0.99, sum by (le) (rate(openbell_lag_seconds_bucket{run=~"$run"}[$__rate_interval])))';
const APPLIED_EXPR = 'sum(rate(openbell_events_applied_total{run=~"$run"}[$__rate_interval]))';

function panel(title: string, expr: string, unit: string, check: PanelCheck): DashboardPanel {
  const targets = [{ refId: 'A', expr, legendFormat: undefined }];
  return { id: 1, type: 'timeseries', title, unit, targets, check };
}

const lagPanel = panel('End-to-end lag', LAG_EXPR, 's', { reduce: 'max', max: 1, tolerance: 0.5 });
const appliedPanel = panel('Events applied', APPLIED_EXPR, 'ops', { reduce: 'max', min: 1 });
const dashboard: Dashboard = {
  file: 'pipeline.json',
  uid: 'openbell-pipeline',
  title: 'Pipeline',
  variables: [],
  panels: [lagPanel, appliedPanel],
};
const series = (labels: Record<string, string>, values: string[]): RangeSeries => ({
  metric: labels,
  values: values.map((value, i) => [1000 + i, value]),
});

describe('check reduce', () => {
  it('ignores NaN samples and keeps +Inf as a value', () => {
    const values = series({}, ['0.5', 'NaN', '+Inf', 'NaN']).values;
    expect(reduceSeries(values, 'max')).toBe(Infinity);
    expect(reduceSeries(values, 'min')).toBe(0.5);
    expect(reduceSeries(values, 'mean')).toBe(Infinity);
    expect(reduceSeries(values, 'last')).toBe(Infinity);
    expect(reduceSeries(series({}, ['1', 'NaN', '3']).values, 'mean')).toBe(2);
    expect(reduceSeries(series({}, ['NaN', 'NaN']).values, 'max')).toBeUndefined();
  });

  it('takes the sample with the latest timestamp for last, whatever the order', () => {
    const values: [number, string][] = [
      [1003, '7'],
      [1001, '9'],
      [1004, 'NaN'],
    ];
    expect(reduceSeries(values, 'last')).toBe(7);
  });
});

describe('check worst series', () => {
  const three = [
    series({ instance: 'a' }, ['0.1', '0.4']),
    series({ instance: 'b' }, ['0.3', 'NaN']),
    series({ instance: 'c' }, ['NaN']),
  ];

  it('judges the largest reduced series against max and the smallest against min', () => {
    const worst = worstOf(three, { reduce: 'max', max: 1, min: 0.35 });
    expect(worst).toEqual({
      max: { value: 0.4, labels: { instance: 'a' } },
      min: { value: 0.3, labels: { instance: 'b' } },
    });
    expect(judgeBounds(worst, { reduce: 'max', max: 1, min: 0.35 }, 's')).toEqual([
      '300 ms < min 350 ms',
    ]);
    expect(judgeBounds(worst, { reduce: 'max', max: 0.39, min: 0.1 }, 's')).toEqual([
      '400 ms > max 390 ms',
    ]);
  });

  it('keeps only the bounds the check has, and no data when every series is NaN', () => {
    // b's NaN is no sample: its mean is 0.3, above a's 0.25.
    expect(worstOf(three, { reduce: 'mean', max: 1 })).toEqual({
      max: { value: 0.3, labels: { instance: 'b' } },
    });
    expect(worstOf([three[2]!], { reduce: 'max', max: 1 })).toBeUndefined();
    expect(worstOf([], { reduce: 'max', max: 1 })).toBeUndefined();
  });
});

describe('check verdicts', () => {
  it('treat bounds as inclusive and +Inf as over any max', () => {
    const at = (value: number) => ({ max: { value, labels: {} }, min: { value, labels: {} } });
    expect(judgeBounds(at(1), { reduce: 'max', max: 1 }, 's')).toEqual([]);
    expect(judgeBounds(at(1), { reduce: 'max', min: 1 }, 'ops')).toEqual([]);
    expect(judgeBounds(at(Infinity), { reduce: 'max', max: 1 }, 's')).toEqual(['+Inf s > max 1 s']);
    expect(judgeBounds(at(0.99), { reduce: 'max', min: 1 }, 'ops')).toEqual([
      '0.99 ops/s < min 1 ops/s',
    ]);
  });

  it('default no data to pass with only max and to fail with min, unless noData says', () => {
    expect(judgeBounds(undefined, { reduce: 'max', max: 0 }, 'short')).toEqual([]);
    expect(judgeBounds(undefined, { reduce: 'max', min: 1 }, 'ops')).toEqual(['no data']);
    expect(judgeBounds(undefined, { reduce: 'max', max: 1, min: 0 }, 's')).toEqual(['no data']);
    expect(judgeBounds(undefined, { reduce: 'max', max: 0, noData: 'fail' }, 'short')).toEqual([
      'no data',
    ]);
    expect(judgeBounds(undefined, { reduce: 'max', min: 1, noData: 'pass' }, 'ops')).toEqual([]);
  });

  it('hold a max check to the baseline plus its tolerance, inclusive', () => {
    const check: PanelCheck = { reduce: 'max', max: 10, tolerance: 0.5 };
    const baseline = { max: { value: 0.2, labels: {} } };
    const at = (value: number) => ({ max: { value, labels: {} } });
    expect(judgeBaseline(at(0.3), baseline, check, 's')).toMatchObject({
      status: 'pass',
      limits: { max: 0.30000000000000004 },
    });
    expect(judgeBaseline(at(0.31), baseline, check, 's')).toEqual({
      status: 'fail',
      limits: { max: 0.30000000000000004 },
      detail: '310 ms > baseline 200 ms + 50 %',
    });
    // A better run passes however much better it is.
    expect(judgeBaseline(at(0), baseline, check, 's').status).toBe('pass');
  });

  it('hold a min check to the baseline minus its tolerance, inclusive', () => {
    const check: PanelCheck = { reduce: 'max', min: 1, tolerance: 0.5 };
    const baseline = { min: { value: 100, labels: {} } };
    const at = (value: number) => ({ min: { value, labels: {} } });
    expect(judgeBaseline(at(50), baseline, check, 'ops')).toMatchObject({
      status: 'pass',
      limits: { min: 50 },
    });
    expect(judgeBaseline(at(49), baseline, check, 'ops')).toEqual({
      status: 'fail',
      limits: { min: 50 },
      detail: '49 ops/s < baseline 100 ops/s − 50 %',
    });
    expect(judgeBaseline(at(1e6), baseline, check, 'ops').status).toBe('pass');
  });

  it('fail a two-sided check against the baseline when either side is out', () => {
    const check: PanelCheck = { reduce: 'mean', min: 0, max: 100, tolerance: 0 };
    const baseline = { max: { value: 10, labels: {} }, min: { value: 5, labels: {} } };
    const run = { max: { value: 10, labels: {} }, min: { value: 4, labels: {} } };
    expect(judgeBaseline(run, baseline, check, 'short')).toMatchObject({
      status: 'fail',
      detail: '4 < baseline 5 − 0 %',
    });
  });

  it('skip the baseline without a tolerance or without data on either side', () => {
    const value = { max: { value: 1, labels: {} } };
    expect(judgeBaseline(value, value, { reduce: 'max', max: 0 }, 's')).toEqual({
      status: 'skipped',
      detail: 'no tolerance',
    });
    const check: PanelCheck = { reduce: 'max', max: 1, tolerance: 0.5 };
    expect(judgeBaseline(value, undefined, check, 's').status).toBe('skipped');
    expect(judgeBaseline(undefined, value, check, 's').status).toBe('skipped');
  });
});

describe('check query variables', () => {
  it('follow Grafana’s $__rate_interval rule for the scrape interval', () => {
    expect(rateIntervalSeconds(1, 1)).toBe(4);
    expect(rateIntervalSeconds(5, 5)).toBe(20);
    expect(rateIntervalSeconds(30, 5)).toBe(35);
  });

  it('step at the scrape interval, coarser only past 11,000 points', () => {
    const hours = (h: number) => ({ startMs: 0, endMs: h * 3_600_000 });
    expect(stepSeconds(hours(3), 1)).toBe(1);
    expect(stepSeconds(hours(4), 1)).toBe(2);
    expect(stepSeconds(hours(4), 5)).toBe(5);
  });

  it('substitute the run as a regex literal, the step and the window', () => {
    const run = {
      label: 'default',
      runLabel: 'r.1',
      window: { startMs: 1_000_000, endMs: 1_093_400 },
    };
    expect(checkVariables(run, 1, 1)).toEqual({
      run: 'r\\\\.1',
      __rate_interval: '4s',
      __interval: '1s',
      __range: '93s',
    });
    expect(checkVariables(run, 0.5, 0.5)).toMatchObject({
      __rate_interval: '2s',
      __interval: '500ms',
    });
  });

  it('read Prometheus durations and reject anything else', () => {
    expect(parsePromDuration('5s')).toBe(5);
    expect(parsePromDuration('1m30s')).toBe(90);
    expect(parsePromDuration('500ms')).toBe(0.5);
    expect(parsePromDuration('1h')).toBe(3600);
    expect(() => parsePromDuration('5 s')).toThrow(/not a Prometheus duration/);
    expect(() => parsePromDuration('')).toThrow(/not a Prometheus duration/);
  });
});

function result(overrides: Partial<PanelResult>): PanelResult {
  return {
    dashboard: 'Pipeline',
    dashboardUid: 'openbell-pipeline',
    panel: 'End-to-end lag',
    unit: 's',
    refId: 'A',
    expr: LAG_EXPR,
    query: '…',
    check: { reduce: 'max', max: 1, tolerance: 0.5 },
    series: 1,
    worst: { max: { value: 0.0985, labels: {} } },
    verdict: 'pass',
    reasons: [],
    ...overrides,
  };
}

const window = { startMs: 0, endMs: 10_000 };
const twoRuns: CheckReport = {
  runId: 'r1',
  evaluatedAt: '2026-11-24T22:00:00.000Z',
  scrapeIntervalS: 1,
  passed: true,
  runs: [
    {
      label: 'default',
      runLabel: 'r1',
      window,
      stepS: 1,
      rateInterval: '4s',
      passed: true,
      panels: [
        result({}),
        result({
          panel: 'Dropped events over the run',
          unit: 'short',
          check: { reduce: 'max', max: 0 },
          worst: { max: { value: 0, labels: { stage: 'listener' } } },
        }),
      ],
    },
    {
      label: 'poc',
      runLabel: 'r1-poc',
      window,
      stepS: 1,
      rateInterval: '4s',
      passed: false,
      panels: [
        result({
          worst: { max: { value: Infinity, labels: {} } },
          verdict: 'fail',
          reasons: ['+Inf s > max 1 s'],
        }),
        result({
          panel: 'Dropped events over the run',
          unit: 'short',
          check: { reduce: 'max', max: 0 },
          worst: { max: { value: 3337, labels: { stage: 'broker', reason: 'expired' } } },
          verdict: 'fail',
          reasons: ['3,337 > max 0'],
        }),
      ],
    },
  ],
};

describe('check formatting', () => {
  it('shows values in the panel’s unit', () => {
    expect(formatValue(0.246, 's')).toBe('246 ms');
    expect(formatValue(4.98, 's')).toBe('4.98 s');
    expect(formatValue(0, 's')).toBe('0 s');
    expect(formatValue(Infinity, 's')).toBe('+Inf s');
    expect(formatValue(7228.7, 'ops')).toBe('7,229 ops/s');
    expect(formatValue(0.0004, 'short')).toBe('0.0004');
    expect(formatValue(0.5, 'percentunit')).toBe('50 %');
    expect(formatValue(12, 'bytes')).toBe('12 bytes');
    expect(formatThreshold({ reduce: 'max', max: 1 }, 's')).toBe('≤ 1 s');
    expect(formatThreshold({ reduce: 'max', min: 0.5, max: 2 }, 's')).toBe('≥ 500 ms, ≤ 2 s');
  });

  it('prints one aligned row per panel and run, the failing series, and the default’s verdict', () => {
    const lines = formatCheckTable(twoRuns).split('\n');
    expect(lines[0]).toBe('openbell check r1: 1 s scrapes');
    const header = lines[2]!;
    expect(header).toMatch(/^DASHBOARD +PANEL +RUN +VALUE +THRESHOLD +VERDICT +DETAIL$/);
    const rows = lines.slice(3, 7);
    for (const row of rows)
      expect(row.indexOf('  PASS') + row.indexOf('  FAIL')).toBe(header.indexOf('  VERDICT') - 1);
    expect(rows[0]).toMatch(/^Pipeline +End-to-end lag +r1 +98.5 ms +≤ 1 s +PASS$/);
    // Ties on a passing panel decide nothing: no labels. A failing one names its series.
    expect(rows[1]).not.toContain('listener');
    expect(rows[2]).toMatch(/r1-poc +\+Inf s +≤ 1 s +FAIL +\+Inf s > max 1 s$/);
    expect(rows[3]).toContain('FAIL     3,337 > max 0 {stage="broker", reason="expired"}');
    expect(lines.slice(-3)).toEqual([
      'default (r1): PASS, 0 of 2 panels failed',
      'poc (r1-poc): FAIL, 2 of 2 panels failed (reported only: the exit status is the default run’s)',
      'check: PASSED',
    ]);
  });

  it('adds the baseline column with its limit, or why it was skipped', () => {
    const withBaseline: CheckReport = {
      ...twoRuns,
      baseline: { runId: 'r0' },
      runs: [
        {
          ...twoRuns.runs[0]!,
          panels: [
            result({
              baseline: {
                runLabel: 'r0',
                source: 'check.json',
                worst: { max: { value: 0.05, labels: {} } },
                status: 'fail',
                limits: { max: 0.075 },
                detail: '98.5 ms > baseline 50 ms + 50 %',
              },
              verdict: 'fail',
              reasons: ['baseline: 98.5 ms > baseline 50 ms + 50 %'],
            }),
            result({
              panel: 'Dropped',
              baseline: { worst: null, status: 'skipped', detail: 'no tolerance' },
            }),
          ],
        },
      ],
    };
    const table = formatCheckTable(withBaseline);
    expect(table.split('\n')[0]).toBe('openbell check r1 against r0: 1 s scrapes');
    expect(table).toMatch(/BASELINE/);
    expect(table).toMatch(/50 ms → ≤ 75 ms +FAIL +baseline: 98.5 ms > baseline 50 ms \+ 50 %/);
    expect(table).toMatch(/\(no tolerance\) +PASS/);
  });
});

describe('check.json', () => {
  it('keeps +Inf through JSON and finds a panel again by dashboard, title, query and reduce', () => {
    const text = serializeCheckReport(twoRuns);
    expect(text).toContain('"value": "+Inf"');
    const json = parseCheckJson(JSON.parse(text), 'check.json');
    expect(findCheckJsonPanel(json, 'poc', dashboard, lagPanel)).toEqual({
      runLabel: 'r1-poc',
      worst: { max: { value: Infinity, labels: {} } },
    });
    expect(findCheckJsonPanel(json, 'default', dashboard, lagPanel)?.worst?.max?.value).toBe(
      0.0985,
    );
    // A changed query or reduce is not the same check: the baseline is evaluated again.
    const changed = {
      ...lagPanel,
      targets: [{ ...lagPanel.targets[0]!, expr: `${LAG_EXPR} * 2` }],
    };
    expect(findCheckJsonPanel(json, 'default', dashboard, changed)).toBeUndefined();
    const mean = { ...lagPanel, check: { ...lagPanel.check!, reduce: 'mean' as const } };
    expect(findCheckJsonPanel(json, 'default', dashboard, mean)).toBeUndefined();
    expect(() => parseCheckJson({ runs: 1 }, 'x/check.json')).toThrow(/x\/check.json/);
  });
});

describe('check evaluation', () => {
  let server: Server | undefined;
  afterEach(
    () => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())),
  );

  /** A Prometheus stand-in: 1 s scrapes, a lag series, a parse error for the applied query. */
  async function fakePrometheus(queries: string[]): Promise<string> {
    const fake = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        res.setHeader('content-type', 'application/json');
        if (req.url === '/api/v1/status/config') {
          res.end(
            JSON.stringify({
              status: 'success',
              data: { yaml: 'global:\n  scrape_interval: 1s\n' },
            }),
          );
          return;
        }
        const form = new URLSearchParams(body);
        queries.push(`${form.get('query')} step=${form.get('step')}`);
        if (form.get('query')!.includes('events_applied')) {
          res.statusCode = 400;
          res.end(JSON.stringify({ status: 'error', errorType: 'bad_data', error: 'parse error' }));
          return;
        }
        const result = [series({}, ['0.2', 'NaN', '1.4'])];
        res.end(JSON.stringify({ status: 'success', data: { resultType: 'matrix', result } }));
      });
    });
    server = fake;
    await new Promise<void>((resolve) => fake.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(fake.address() as AddressInfo).port}`;
  }

  it('turns a query error into an error verdict that fails the run, and judges the rest', async () => {
    const queries: string[] = [];
    const url = await fakePrometheus(queries);
    const scrapeIntervalS = await readScrapeIntervalS(url);
    expect(scrapeIntervalS).toBe(1);
    const report = await evaluateReport({
      report: { runId: 'r1', runs: [{ label: 'default', runLabel: 'r1', window }] },
      dashboards: [dashboard],
      prometheus: { url, scrapeIntervalS },
      baseline: {
        runId: 'r0',
        lookup: (label) => Promise.resolve({ skipped: `baseline has no ${label} run` }),
      },
    });
    expect(queries).toEqual([
      `${LAG_EXPR.replace('$run', 'r1').replace('$__rate_interval', '4s')} step=1`,
      `${APPLIED_EXPR.replace('$run', 'r1').replace('$__rate_interval', '4s')} step=1`,
    ]);
    const [lag, applied] = report.runs[0]!.panels;
    expect(lag).toMatchObject({
      verdict: 'fail',
      reasons: ['1.4 s > max 1 s'],
      baseline: { status: 'skipped', detail: 'baseline has no default run' },
    });
    expect(applied).toMatchObject({
      verdict: 'error',
      reasons: ['query failed: bad_data: parse error'],
    });
    expect(report).toMatchObject({ passed: false, baseline: { runId: 'r0' } });
  });

  it('fails a run that no checked panel judged', async () => {
    const queries: string[] = [];
    const url = await fakePrometheus(queries);
    const report = await evaluateReport({
      report: { runId: 'r1', runs: [{ label: 'default', runLabel: 'r1', window }] },
      dashboards: [
        { ...dashboard, panels: dashboard.panels.map((p) => ({ ...p, check: undefined })) },
      ],
      prometheus: { url, scrapeIntervalS: 1 },
    });
    expect(queries).toEqual([]);
    expect(report.runs[0]).toMatchObject({ panels: [], passed: false });
    expect(report.passed).toBe(false);
  });
});
