import type { PanelCheck } from '../grafana/check-schema.ts';
import type { CheckReport, PanelResult, Worst } from './check.ts';

// What `openbell check` puts out: the table people read and check.json, which a later check
// reads back as its baseline.

const whole = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const hundredths = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });
const significant = new Intl.NumberFormat('en-US', { maximumSignificantDigits: 3 });

/** A number for people: whole above 100, two decimals above 1, three significant digits below. */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return Number.isNaN(value) ? 'NaN' : value > 0 ? '+Inf' : '-Inf';
  const abs = Math.abs(value);
  if (abs >= 100) return whole.format(value);
  if (abs >= 1) return hundredths.format(value);
  return significant.format(value);
}

/** A value in a Grafana unit (`s`, `ops`, `short`, `percentunit`, …), as the panel shows it. */
export function formatValue(value: number, unit: string | undefined): string {
  switch (unit) {
    case 's':
      return Math.abs(value) < 1 && value !== 0
        ? `${formatNumber(value * 1000)} ms`
        : `${formatNumber(value)} s`;
    case 'ms':
      return `${formatNumber(value)} ms`;
    case 'ops':
      return `${formatNumber(value)} ops/s`;
    case 'percentunit':
      return `${formatNumber(value * 100)} %`;
    case undefined:
    case 'short':
    case 'none':
      return formatNumber(value);
    default:
      return `${formatNumber(value)} ${unit}`;
  }
}

/** The check's bounds in words: `≤ 1 s`, `≥ 1 ops/s`. */
export function formatThreshold(check: PanelCheck, unit: string | undefined): string {
  return [
    check.min === undefined ? undefined : `≥ ${formatValue(check.min, unit)}`,
    check.max === undefined ? undefined : `≤ ${formatValue(check.max, unit)}`,
  ]
    .filter((part) => part !== undefined)
    .join(', ');
}

/** The worst values of a panel in words: one per bound, `no data` without. */
export function formatWorst(worst: Worst | null | undefined, unit: string | undefined): string {
  if (worst === null || worst === undefined) return 'no data';
  const values = [worst.min, worst.max].filter((o) => o !== undefined);
  if (values.length === 2 && values[0]!.value === values[1]!.value)
    return formatValue(values[0]!.value, unit);
  return values.map((o) => formatValue(o.value, unit)).join(' … ');
}

/** Series labels as PromQL prints them: `stage="broker", reason="expired"`. */
export function formatLabels(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([name, value]) => `${name}=${JSON.stringify(value)}`)
    .join(', ');
}

function formatBaseline(panel: PanelResult): string {
  const baseline = panel.baseline;
  if (baseline === undefined) return '';
  if (baseline.status === 'skipped') return `(${baseline.detail})`;
  const limits = [
    baseline.limits?.min === undefined
      ? undefined
      : `≥ ${formatValue(baseline.limits.min, panel.unit)}`,
    baseline.limits?.max === undefined
      ? undefined
      : `≤ ${formatValue(baseline.limits.max, panel.unit)}`,
  ].filter((part) => part !== undefined);
  return `${formatWorst(baseline.worst, panel.unit)} → ${limits.join(', ')}`;
}

/** Rows padded into columns, two spaces apart, the last column unpadded. */
export function alignColumns(rows: readonly (readonly string[])[]): string[] {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)));
  return rows.map((row) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths?.[i] ?? 0)))
      .join('  ')
      .trimEnd(),
  );
}

/**
 * The check as a table: one row per panel and run with its value, threshold, baseline and
 * verdict (and why, or the series that decided), then each run's verdict.
 */
export function formatCheckTable(report: CheckReport): string {
  const withBaseline = report.baseline !== undefined;
  const header = ['DASHBOARD', 'PANEL', 'RUN', 'VALUE', 'THRESHOLD'];
  if (withBaseline) header.push('BASELINE');
  header.push('VERDICT', 'DETAIL');
  const rows = report.runs.flatMap((run) =>
    run.panels.map((panel) => {
      // On ties (every drop series at 0) any series "decides": labels only say who failed.
      const series = [
        ...new Set([panel.worst?.max, panel.worst?.min].map((o) => formatLabels(o?.labels ?? {}))),
      ].filter((labels) => labels !== '');
      const detail =
        panel.verdict === 'pass'
          ? ''
          : [panel.reasons.join('; '), ...series.map((labels) => `{${labels}}`)].join(' ');
      const row = [
        panel.dashboard,
        panel.panel,
        run.runLabel,
        panel.verdict === 'error' ? 'error' : formatWorst(panel.worst, panel.unit),
        formatThreshold(panel.check, panel.unit),
      ];
      if (withBaseline) row.push(formatBaseline(panel));
      row.push(panel.verdict.toUpperCase(), detail);
      return row;
    }),
  );
  const lines = [
    `openbell check ${report.runId}` +
      (withBaseline ? ` against ${report.baseline!.runId}` : '') +
      `: ${report.scrapeIntervalS} s scrapes`,
    '',
    ...alignColumns([header, ...rows]),
    '',
  ];
  report.runs.forEach((run, index) => {
    const failed = run.panels.filter((p) => p.verdict !== 'pass').length;
    const verdict = run.passed ? 'PASS' : 'FAIL';
    const counts = `${failed} of ${run.panels.length} panels failed`;
    const note = index === 0 ? '' : ' (reported only: the exit status is the default run’s)';
    lines.push(`${run.label} (${run.runLabel}): ${verdict}, ${counts}${note}`);
  });
  lines.push(`check: ${report.passed ? 'PASSED' : 'FAILED'}`);
  return lines.join('\n');
}

/** check.json's text: ±Inf as the strings Prometheus uses (JSON has no infinity). */
export function serializeCheckReport(report: CheckReport): string {
  const replacer = (_key: string, value: unknown): unknown =>
    typeof value === 'number' && !Number.isFinite(value) ? formatNumber(value) : value;
  return `${JSON.stringify(report, replacer, 2)}\n`;
}
