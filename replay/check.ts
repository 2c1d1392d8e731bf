import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import type { PanelCheck } from '../grafana/check-schema.ts';
import type { Dashboard, DashboardPanel } from '../grafana/dashboards.ts';
import {
  formatRegexLiteral,
  substituteVariables,
  type GrafanaVariables,
} from '../grafana/variables.ts';
import { formatValue } from './check-format.ts';

// `openbell check`: every dashboard panel with an `openbellCheck`, evaluated over a lab run's
// window against a real Prometheus, as grafana/CHECKS.md specifies.

/** Prometheus' limit of points per series in one `query_range`. */
const MAX_POINTS = 11_000;

/** The parts of a lab run a check needs (a `LabRun` has them). */
export interface CheckedRun {
  /** `default` or `poc`: baselines pair runs by this label. */
  label: string;
  /** The `run` label of the run's series. */
  runLabel: string;
  /** Epoch ms. */
  window: { startMs: number; endMs: number };
}

/** The parts of a lab report a check needs (a `LabReport` has them). */
export interface CheckedReport {
  runId: string;
  runs: CheckedRun[];
  /** Relative to the report's directory: the run's archived Prometheus. */
  prometheusDir?: string | undefined;
}

/** A Prometheus to query, and the scrape interval its data was taken at. */
export interface PrometheusSource {
  url: string;
  scrapeIntervalS: number;
}

/** One series of a range query: its labels and `[seconds, "value"]` samples. */
export interface RangeSeries {
  metric: Record<string, string>;
  values: [number, string][];
}

/** The reduced value of the series that decided a bound, and that series' labels. */
export interface Observed {
  value: number;
  labels: Record<string, string>;
}

/** The worst reduced value per bound of a check: the largest for `max`, the smallest for `min`. */
export interface Worst {
  max?: Observed;
  min?: Observed;
}

/** A panel compared with the same panel of the baseline run. */
export interface BaselineResult {
  /** The baseline run's `run` label (absent when the baseline has no run of this label). */
  runLabel?: string;
  /** Where the baseline's values came from. */
  source?: 'check.json' | 'prometheus';
  /** The baseline's worst values; null when it had no data. */
  worst: Worst | null;
  status: 'pass' | 'fail' | 'skipped';
  /** The limits `value` was held to, per bound (when compared). */
  limits?: { max?: number; min?: number };
  detail: string;
}

/** The verdict on one panel for one run. */
export interface PanelResult {
  dashboard: string;
  dashboardUid: string;
  panel: string;
  unit: string | undefined;
  refId: string;
  /** The target's query as the dashboard has it, variables and all. */
  expr: string;
  /** The query sent to Prometheus. */
  query: string;
  check: PanelCheck;
  /** Series with at least one sample that is not NaN. */
  series: number;
  /** Null when no series had data (then the check's `noData` verdict applies). */
  worst: Worst | null;
  baseline?: BaselineResult;
  verdict: 'pass' | 'fail' | 'error';
  /** Why it failed (each bound, the baseline, the query error); empty when it passed. */
  reasons: string[];
}

/** The check of one run of a lab report. */
export interface RunCheckResult extends CheckedRun {
  stepS: number;
  rateInterval: string;
  passed: boolean;
  panels: PanelResult[];
}

/** `<out>/<run-id>/check.json`. */
export interface CheckReport {
  runId: string;
  evaluatedAt: string;
  scrapeIntervalS: number;
  baseline?: { runId: string } | undefined;
  /** The default run's verdict (the first run); the poc run is reported, never judged. */
  passed: boolean;
  runs: RunCheckResult[];
}

/** A baseline panel's worst values and where they came from, or why there are none. */
export type BaselineLookup =
  | { runLabel: string; source: 'check.json' | 'prometheus'; worst: Worst | null }
  | { skipped: string };

/** The run a check compares with (replay/check-main.ts reads it from its report directory). */
export interface Baseline {
  runId: string;
  /** The worst values of `panel` in the baseline's run labelled `label` (`default`, `poc`). */
  lookup(label: string, dashboard: Dashboard, panel: DashboardPanel): Promise<BaselineLookup>;
}

/** A Prometheus sample value: a float, or `NaN`, `+Inf`, `-Inf` as Prometheus spells them. */
export function parseSampleValue(text: string): number {
  if (text === '+Inf' || text === 'Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  return Number(text);
}

/**
 * One series reduced to one number over its samples, `NaN`s ignored (`+Inf` is a value);
 * undefined when no sample is left.
 */
export function reduceSeries(
  values: readonly (readonly [number, string])[],
  reduce: PanelCheck['reduce'],
): number | undefined {
  const samples = values
    .map(([at, text]) => [at, parseSampleValue(text)] as const)
    .filter(([, value]) => !Number.isNaN(value));
  if (samples.length === 0) return undefined;
  const numbers = samples.map(([, value]) => value);
  switch (reduce) {
    case 'max':
      return Math.max(...numbers);
    case 'min':
      return Math.min(...numbers);
    case 'mean':
      return numbers.reduce((sum, value) => sum + value, 0) / numbers.length;
    case 'last':
      return samples.reduce((latest, sample) => (sample[0] >= latest[0] ? sample : latest))[1];
  }
}

/** The worst reduced series per bound of `check`; undefined when no series has data. */
export function worstOf(series: readonly RangeSeries[], check: PanelCheck): Worst | undefined {
  const reduced = series.flatMap((s) => {
    const value = reduceSeries(s.values, check.reduce);
    return value === undefined ? [] : [{ value, labels: s.metric }];
  });
  if (reduced.length === 0) return undefined;
  const pick = (better: (a: number, b: number) => boolean): Observed =>
    reduced.reduce((worst, s) => (better(s.value, worst.value) ? s : worst));
  return {
    ...(check.max !== undefined && { max: pick((a, b) => a > b) }),
    ...(check.min !== undefined && { min: pick((a, b) => a < b) }),
  };
}

/** Failed absolute bounds of a check, in words; `[]` passes. No data follows `noData`. */
export function judgeBounds(
  worst: Worst | undefined,
  check: PanelCheck,
  unit: string | undefined,
): string[] {
  if (worst === undefined) {
    const noData = check.noData ?? (check.min === undefined ? 'pass' : 'fail');
    return noData === 'pass' ? [] : ['no data'];
  }
  const reasons: string[] = [];
  if (check.max !== undefined && worst.max !== undefined && !(worst.max.value <= check.max))
    reasons.push(`${formatValue(worst.max.value, unit)} > max ${formatValue(check.max, unit)}`);
  if (check.min !== undefined && worst.min !== undefined && !(worst.min.value >= check.min))
    reasons.push(`${formatValue(worst.min.value, unit)} < min ${formatValue(check.min, unit)}`);
  return reasons;
}

/**
 * A run's worst values against the baseline's, within the check's `tolerance`: with `max`, more
 * than `b × (1 + t)` fails; with `min`, less than `b × (1 − t)`. Skipped without a tolerance, or
 * without data on either side.
 */
export function judgeBaseline(
  worst: Worst | undefined,
  baseline: Worst | undefined,
  check: PanelCheck,
  unit: string | undefined,
): Pick<BaselineResult, 'status' | 'limits' | 'detail'> {
  const t = check.tolerance;
  if (t === undefined) return { status: 'skipped', detail: 'no tolerance' };
  if (baseline === undefined) return { status: 'skipped', detail: 'baseline has no data' };
  if (worst === undefined) return { status: 'skipped', detail: 'this run has no data' };
  const limits: { max?: number; min?: number } = {};
  const failed: string[] = [];
  if (check.max !== undefined && worst.max !== undefined && baseline.max !== undefined) {
    limits.max = baseline.max.value * (1 + t);
    if (!(worst.max.value <= limits.max))
      failed.push(`${formatValue(worst.max.value, unit)} > ${describeLimit(baseline.max, '+', t)}`);
  }
  if (check.min !== undefined && worst.min !== undefined && baseline.min !== undefined) {
    limits.min = baseline.min.value * (1 - t);
    if (!(worst.min.value >= limits.min))
      failed.push(`${formatValue(worst.min.value, unit)} < ${describeLimit(baseline.min, '−', t)}`);
  }
  if (limits.max === undefined && limits.min === undefined)
    return { status: 'skipped', detail: 'baseline has no value for these bounds' };
  return failed.length === 0
    ? { status: 'pass', limits, detail: 'within tolerance' }
    : { status: 'fail', limits, detail: failed.join('; ') };

  function describeLimit(base: Observed, sign: string, tolerance: number): string {
    return `baseline ${formatValue(base.value, unit)} ${sign} ${Math.round(tolerance * 100)} %`;
  }
}

/** Grafana's `$__rate_interval`: `max(step + scrape, 4 × scrape)`, seconds. */
export function rateIntervalSeconds(stepS: number, scrapeIntervalS: number): number {
  return Math.max(stepS + scrapeIntervalS, 4 * scrapeIntervalS);
}

/** The step of a run's range queries: the scrape interval, a multiple of it past 11,000 points. */
export function stepSeconds(window: CheckedRun['window'], scrapeIntervalS: number): number {
  const points = (window.endMs - window.startMs) / 1000 / scrapeIntervalS;
  return scrapeIntervalS * Math.max(1, Math.ceil(points / MAX_POINTS));
}

/** A duration as PromQL writes it: `4s`, or `1500ms` when not whole seconds. */
export function formatPromDuration(seconds: number): string {
  return Number.isInteger(seconds) ? `${seconds}s` : `${Math.round(seconds * 1000)}ms`;
}

/** A Prometheus duration (`5s`, `1m30s`, `500ms`) in seconds. */
export function parsePromDuration(text: string): number {
  const units: Record<string, number> = { y: 31_536_000, w: 604_800, d: 86_400, h: 3600, m: 60 };
  const parts = [...text.matchAll(/(\d+)(ms|[ywdhms])/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text)
    throw new Error(`not a Prometheus duration: ${JSON.stringify(text)}`);
  return parts.reduce((sum, [, n, unit]) => {
    const scale = unit === 'ms' ? 0.001 : unit === 's' ? 1 : (units[unit!] ?? 0);
    return sum + Number(n) * scale;
  }, 0);
}

/** The values of the variables a check's query may use, for one run (grafana/CHECKS.md). */
export function checkVariables(
  run: CheckedRun,
  stepS: number,
  scrapeIntervalS: number,
): GrafanaVariables {
  const rangeS = Math.max(1, Math.round((run.window.endMs - run.window.startMs) / 1000));
  return {
    run: formatRegexLiteral(run.runLabel),
    __rate_interval: formatPromDuration(rateIntervalSeconds(stepS, scrapeIntervalS)),
    __interval: formatPromDuration(stepS),
    __range: `${rangeS}s`,
  };
}

/** The target a panel's check evaluates: `check.target`, else the first. */
export function targetOf(panel: DashboardPanel): DashboardPanel['targets'][number] | undefined {
  const refId = panel.check?.target;
  return refId === undefined ? panel.targets[0] : panel.targets.find((t) => t.refId === refId);
}

// ---- I/O: the Prometheus HTTP API ----

const rangeResponseSchema = z.looseObject({
  status: z.string(),
  error: z.string().optional(),
  errorType: z.string().optional(),
  data: z
    .looseObject({
      resultType: z.string(),
      result: z.array(
        z.looseObject({
          metric: z.record(z.string(), z.string()),
          values: z.array(z.tuple([z.number(), z.string()])),
        }),
      ),
    })
    .optional(),
});

/** `query_range` over a window; throws with Prometheus' error on anything but a matrix. */
export async function queryRange(
  url: string,
  query: string,
  window: CheckedRun['window'],
  stepS: number,
): Promise<RangeSeries[]> {
  const body = new URLSearchParams({
    query,
    start: String(window.startMs / 1000),
    end: String(window.endMs / 1000),
    step: String(stepS),
  });
  const response = await fetch(new URL('/api/v1/query_range', url), {
    method: 'POST',
    body,
    signal: AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  const parsed = rangeResponseSchema.safeParse(safeJson(text));
  if (!parsed.success) throw new Error(`HTTP ${response.status}: ${text.slice(0, 200)}`);
  const { status, error, errorType, data } = parsed.data;
  if (status !== 'success' || data === undefined)
    throw new Error(`${errorType ?? `HTTP ${response.status}`}: ${error ?? status}`);
  if (data.resultType !== 'matrix') throw new Error(`a ${data.resultType}, not a matrix`);
  return data.result;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined; // Not JSON (a proxy's error page): reported with the text.
  }
}

/** The global scrape interval of a running Prometheus, from its configuration. */
export async function readScrapeIntervalS(url: string): Promise<number> {
  const response = await fetch(new URL('/api/v1/status/config', url), {
    signal: AbortSignal.timeout(10_000),
  });
  if (!response.ok) throw new Error(`${url}: /api/v1/status/config: HTTP ${response.status}`);
  const body = (await response.json()) as { data?: { yaml?: string } };
  const config = parseYaml(body.data?.yaml ?? '') as
    { global?: { scrape_interval?: string } } | undefined;
  // Prometheus' own default when the configuration names none.
  return parsePromDuration(config?.global?.scrape_interval ?? '1m');
}

/** A panel's query for one run, with the variables of that run and Prometheus substituted. */
export function panelQuery(
  prometheus: PrometheusSource,
  run: CheckedRun,
  panel: DashboardPanel,
): { query: string; stepS: number } {
  const target = targetOf(panel);
  if (target === undefined) throw new Error(`the panel has no target ${panel.check?.target}`);
  const stepS = stepSeconds(run.window, prometheus.scrapeIntervalS);
  const variables = checkVariables(run, stepS, prometheus.scrapeIntervalS);
  return { query: substituteVariables(target.expr, variables), stepS };
}

/** A panel's query for one run, sent, and its series reduced to the worst per bound. */
export async function observePanel(
  prometheus: PrometheusSource,
  run: CheckedRun,
  panel: DashboardPanel,
): Promise<{ series: number; worst: Worst | undefined }> {
  const check = panel.check!;
  const { query, stepS } = panelQuery(prometheus, run, panel);
  const result = await queryRange(prometheus.url, query, run.window, stepS);
  const withData = result.filter((s) => reduceSeries(s.values, check.reduce) !== undefined);
  return { series: withData.length, worst: worstOf(withData, check) };
}

/** Options of {@link evaluateReport}. */
export interface CheckOptions {
  report: CheckedReport;
  /** Every dashboard; panels without an `openbellCheck` are passed over. */
  dashboards: readonly Dashboard[];
  /** The Prometheus holding the report's runs. */
  prometheus: PrometheusSource;
  /** Compare every run with the run of the same label in this one. */
  baseline?: Baseline | undefined;
}

/**
 * Evaluates every checked panel for every run of a lab report. Query errors are verdicts
 * (`error`), not exceptions; `passed` is the first (default) run's, as in the lab's own report.
 */
export async function evaluateReport(options: CheckOptions): Promise<CheckReport> {
  const { prometheus, baseline } = options;
  const runs: RunCheckResult[] = [];
  for (const run of options.report.runs) {
    const stepS = stepSeconds(run.window, prometheus.scrapeIntervalS);
    const panels: PanelResult[] = [];
    for (const dashboard of options.dashboards)
      for (const panel of dashboard.panels)
        if (panel.check !== undefined)
          panels.push(await evaluatePanel(prometheus, run, dashboard, panel, baseline));
    runs.push({
      label: run.label,
      runLabel: run.runLabel,
      window: run.window,
      stepS,
      rateInterval: formatPromDuration(rateIntervalSeconds(stepS, prometheus.scrapeIntervalS)),
      // No checked panel judges nothing: that is a broken setup, not a pass.
      passed: panels.length > 0 && panels.every((p) => p.verdict === 'pass'),
      panels,
    });
  }
  return {
    runId: options.report.runId,
    evaluatedAt: new Date().toISOString(),
    scrapeIntervalS: prometheus.scrapeIntervalS,
    ...(baseline === undefined ? {} : { baseline: { runId: baseline.runId } }),
    passed: runs[0]?.passed ?? false,
    runs,
  };
}

async function evaluatePanel(
  prometheus: PrometheusSource,
  run: CheckedRun,
  dashboard: Dashboard,
  panel: DashboardPanel,
  baseline: Baseline | undefined,
): Promise<PanelResult> {
  const check = panel.check!;
  const target = targetOf(panel);
  const result: PanelResult = {
    dashboard: dashboard.title,
    dashboardUid: dashboard.uid,
    panel: panel.title,
    unit: panel.unit,
    refId: target?.refId ?? check.target ?? '',
    expr: target?.expr ?? '',
    query: '',
    check,
    series: 0,
    worst: null,
    verdict: 'error',
    reasons: [],
  };
  let observed: Awaited<ReturnType<typeof observePanel>>;
  try {
    result.query = panelQuery(prometheus, run, panel).query;
    observed = await observePanel(prometheus, run, panel);
  } catch (error) {
    return { ...result, reasons: [`query failed: ${errorMessage(error)}`] };
  }
  result.series = observed.series;
  result.worst = observed.worst ?? null;
  result.reasons = judgeBounds(observed.worst, check, panel.unit);
  if (baseline !== undefined) {
    let found: BaselineLookup;
    try {
      found = await baseline.lookup(run.label, dashboard, panel);
    } catch (error) {
      return { ...result, reasons: [...result.reasons, `baseline: ${errorMessage(error)}`] };
    }
    if ('skipped' in found) {
      result.baseline = { worst: null, status: 'skipped', detail: found.skipped };
    } else {
      const judged = judgeBaseline(observed.worst, found.worst ?? undefined, check, panel.unit);
      result.baseline = { ...found, ...judged };
      if (judged.status === 'fail') result.reasons.push(`baseline: ${judged.detail}`);
    }
  }
  result.verdict = result.reasons.length === 0 ? 'pass' : 'fail';
  return result;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
