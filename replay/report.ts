import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { newYorkOffsetMs } from '../core/index.ts';
import type { LabCheck, LabFeedTotals, LabReport, LabRun } from './lab-types.ts';

const require = createRequire(import.meta.url);
const UPLOT_JS = require.resolve('uplot/dist/uPlot.iife.min.js');
const UPLOT_CSS = require.resolve('uplot/dist/uPlot.min.css');

const counts = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const decimals = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });

/** One line of the totals: its label and its value as text. */
type TotalRow = [label: string, value: (totals: LabRun['totals']) => string];

const ms = (value: number): string => `${decimals.format(value)} ms`;

const TOTAL_ROWS: TotalRow[] = [
  ['events sent', (t) => counts.format(t.sentEvents)],
  ['events received', (t) => counts.format(t.receivedEvents)],
  ['events applied', (t) => counts.format(t.appliedEvents)],
  ['listener drops', (t) => counts.format(t.listenerDrops)],
  ['expired', (t) => counts.format(t.expired)],
  ['max-length drops', (t) => counts.format(t.maxLengthDrops)],
  ['lag p50', (t) => ms(t.lagP50Ms)],
  ['lag p99', (t) => ms(t.lagP99Ms)],
  ['lag max', (t) => ms(t.lagMaxMs)],
  ['lateness p50', (t) => ms(t.latenessP50Ms)],
  ['lateness p99', (t) => ms(t.latenessP99Ms)],
  ['wall time', (t) => `${decimals.format(t.wallSeconds)} s`],
];

/** The traders' view of the feed (runs with `--traders`). */
const FEED_ROWS: [string, (f: LabFeedTotals) => string][] = [
  ['traders', (f) => `${counts.format(f.subscribed)} of ${counts.format(f.clients)}`],
  ['feed updates', (f) => counts.format(f.updates)],
  ['updates/s per trader', (f) => decimals.format(f.updatesPerSecondPerClient)],
  ['feed delivery p50', (f) => (f.latencyP50Ms === null ? '–' : ms(f.latencyP50Ms))],
  ['feed delivery p99', (f) => (f.latencyP99Ms === null ? '–' : ms(f.latencyP99Ms))],
  ['feed seq gaps', (f) => counts.format(f.seqGaps)],
  ['feed disconnects', (f) => counts.format(f.disconnects)],
];

/** The totals rows of a run, feed rows included when any run had traders. */
function totalRows(run: LabRun, withFeed: boolean): [string, string][] {
  const rows = TOTAL_ROWS.map(([label, value]): [string, string] => [label, value(run.totals)]);
  if (withFeed)
    for (const [label, value] of FEED_ROWS)
      rows.push([label, run.feed === undefined ? '–' : value(run.feed)]);
  return rows;
}

/** `HH:MM:SS`, the New York clock time of epoch `ms`. */
function clockEt(epochMs: number): string {
  return new Date(epochMs + newYorkOffsetMs(epochMs)).toISOString().slice(11, 19);
}

function verdict(check: LabCheck): 'PASS' | 'FAIL' | 'SKIPPED' {
  if (check.skipped === true) return 'SKIPPED';
  return check.passed ? 'PASS' : 'FAIL';
}

function escapeHtml(text: string): string {
  return text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
}

/** JSON that cannot end or confuse its `<script>` element: every `<` is written `\u003c`. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replaceAll('<', '\\u003c');
}

/** A file's text to inline in `<tag>`; refuses text that would close the element early. */
async function inline(file: string, tag: 'script' | 'style'): Promise<string> {
  const text = await readFile(file, 'utf8');
  if (text.toLowerCase().includes(`</${tag}`)) throw new Error(`${file} contains </${tag}`);
  return text;
}

const CSS = `
body { font: 14px/1.45 system-ui, sans-serif; color: #222; margin: 24px; max-width: 1400px; }
h1 { font-size: 22px; margin: 0 0 12px; }
h2 { font-size: 18px; margin: 28px 0 8px; }
table { border-collapse: collapse; margin: 4px 0 12px; }
th, td { text-align: left; padding: 3px 10px; border-bottom: 1px solid #ddd; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.meta th { color: #555; font-weight: normal; }
.runs { display: flex; flex-wrap: wrap; gap: 32px; }
.verdict { font-weight: bold; padding: 1px 6px; border-radius: 3px; }
.PASS, .PASSED { background: #dcf5dc; color: #155515; }
.FAIL, .FAILED { background: #fbdada; color: #8a1111; }
.SKIPPED { background: #eee; color: #555; }
#charts .uplot { margin-bottom: 18px; }
`;

/**
 * The page's chart script (a classic script, after uPlot): reads #lab-data and draws each chart
 * with every run's lines, aligned on market time, the first run solid and the compared one dashed.
 */
const CLIENT_JS = `
const TZ = 'America/New_York';
const HEIGHT = 260;
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2'];
const report = JSON.parse(document.getElementById('lab-data').textContent);
const root = document.getElementById('charts');
const limitMs = report.settings.lagP99LimitMs;
const hms = uPlot.fmtDate('{HH}:{mm}:{ss}');
const clock = (sec) => hms(uPlot.tzDate(new Date(sec * 1000), TZ));
const sum = (record) => Object.values(record).reduce((a, b) => a + b, 0);
const samples = report.runs.flatMap((run) => run.samples);
const keysOf = (field) => [...new Set(samples.flatMap((s) => Object.keys(s[field])))].sort();
// Market time in seconds, nudged by 1 ms where it stands still (the drain after the replay).
const xsOf = (runSamples) => runSamples.reduce((xs, s) => {
  const x = s.marketMs / 1000, last = xs.at(-1);
  xs.push(last !== undefined && x <= last ? last + 0.001 : x);
  return xs;
}, []);
const CHARTS = [
  { title: 'Events/s', lines: [
    ['sent', (s) => s.sentPerSec],
    ['received', (s) => sum(s.inPerSec)],
    ...keysOf('inPerSec').map((type) => ['received ' + type, (s) => s.inPerSec[type] ?? 0]),
    ['applied', (s) => s.appliedPerSec],
  ] },
  { title: 'Queue depth (messages)', lines: [['queue depth', (s) => s.queueDepth]] },
  { title: 'End-to-end lag (log scale)', lag: true, lines: [
    ['lag p50', (s) => s.lagP50Ms], ['lag p99', (s) => s.lagP99Ms],
  ] },
  // With traders on the feed: their delivery latency second by second.
  ...(report.runs.some((run) => run.samples.some((s) => s.feedLatencyP99Ms != null))
    ? [{ title: 'Trader delivery latency p99 (ms)', lines: [
        ['delivery p99', (s) => s.feedLatencyP99Ms ?? null],
      ] }]
    : []),
  { title: 'Drops and expiries (cumulative)', lines: [
    ['listener drops', (s) => s.listenerDrops],
    ['expired', (s) => s.expired],
    ['max-length drops', (s) => s.maxLengthDrops],
  ] },
  { title: 'Memory (RSS, MiB)', lines: keysOf('rssMiB').map((name) => [
    name, (s) => s.rssMiB[name] ?? null,
  ]) },
];

function mark(ctx, color, x0, y0, x1, y1, label, textX, textY) {
  ctx.strokeStyle = ctx.fillStyle = color;
  ctx.beginPath();
  ctx.moveTo(x0, y0);
  ctx.lineTo(x1, y1);
  ctx.stroke();
  ctx.fillText(label, textX, textY);
}

// The 09:30 open on every chart; the lag limit on the lag chart.
function drawMarkers(u, limit) {
  const { ctx, bbox: b } = u, px = uPlot.pxRatio, x = u.valToPos(report.openMs / 1000, 'x', true);
  ctx.save();
  ctx.lineWidth = px;
  ctx.setLineDash([4 * px, 3 * px]);
  ctx.font = 11 * px + 'px system-ui, sans-serif';
  ctx.textAlign = 'left';
  ctx.textBaseline = 'alphabetic';
  if (x >= b.left && x <= b.left + b.width) {
    mark(ctx, '#444', x, b.top, x, b.top + b.height, '09:30 open', x + 4 * px, b.top + 12 * px);
  }
  // Each injected fault: a shaded span from its start to its end, named at the top.
  (report.runs[0].faults || []).forEach((fault, n) => {
    const x0 = u.valToPos(fault.startMarketMs / 1000, 'x', true);
    const x1 = Math.max(x0 + px, u.valToPos(fault.endMarketMs / 1000, 'x', true));
    if (x1 < b.left || x0 > b.left + b.width) return;
    ctx.fillStyle = 'rgba(200, 0, 0, 0.08)';
    ctx.fillRect(x0, b.top, x1 - x0, b.height);
    mark(ctx, '#a00', x0, b.top, x0, b.top + b.height, fault.kind, x0 + 4 * px, b.top + (26 + 12 * n) * px);
  });
  if (limit !== undefined) {
    const y = u.valToPos(limit, 'y', true), text = 'p99 limit ' + limit + ' ms';
    mark(ctx, '#c00', b.left, y, b.left + b.width, y, text, b.left + 4 * px, y - 4 * px);
  }
  ctx.restore();
}

function options(chart, width) {
  const series = [{ value: (u, v) => (v === null ? '--' : clock(v)) }];
  report.runs.forEach((run, r) => chart.lines.forEach(([name], i) => series.push({
    label: report.runs.length > 1 ? run.label + ' ' + name : name,
    stroke: COLORS[i % COLORS.length],
    dash: r === 0 ? [] : [7, 4],
    width: 1.5,
  })));
  // asinh: log-like, yet 0 ms fits; ticks at 0, 1, 10, 100 ms… up to past the limit and the data.
  const lagRange = (u, min, max) => [0, 10 ** Math.ceil(Math.log10(Math.max(max ?? 1, limitMs)))];
  const decades = (max) => Array.from({ length: Math.log10(max) + 1 }, (_, e) => 10 ** e);
  const lagAxis = {
    size: 70,
    splits: (u, i, min, max) => [0, ...decades(max)].filter((v) => v >= min),
    filter: (u, splits) => splits,
    values: (u, splits) => splits.map((v) => (v < 1000 ? v + ' ms' : v / 1000 + ' s')),
  };
  return {
    title: chart.title,
    width,
    height: HEIGHT,
    padding: [null, 30, null, null],
    tzDate: (sec) => uPlot.tzDate(new Date(sec * 1000), TZ),
    cursor: { sync: { key: 'lab' } },
    scales: { x: { time: true }, y: chart.lag ? { distr: 4, asinh: 1, range: lagRange } : {} },
    axes: [{ space: 70, values: (u, ts) => ts.map(clock) }, chart.lag ? lagAxis : { size: 70 }],
    series,
    hooks: { draw: [(u) => drawMarkers(u, chart.lag ? limitMs : undefined)] },
  };
}

if (samples.length === 0) {
  root.textContent = 'No samples were recorded.';
} else {
  const width = () => Math.max(320, root.clientWidth);
  // join aligns the runs on market time; a null value stays a gap in its line.
  const plots = CHARTS.map((chart) => {
    const tables = report.runs.map((run) => [
      xsOf(run.samples),
      ...chart.lines.map(([, value]) => run.samples.map(value)),
    ]);
    return new uPlot(options(chart, width()), uPlot.join(tables), root);
  });
  window.addEventListener('resize', () => {
    for (const plot of plots) plot.setSize({ width: width(), height: HEIGHT });
  });
}
`;

function metaTable(report: LabReport): string {
  const { recording: rec, settings } = report;
  const rows: [string, string][] = [
    ['run id', report.runId],
    ['started', report.startedAt],
    ['recording', rec.path],
    ['date', rec.date],
    ['frames / events', `${counts.format(rec.frames)} / ${counts.format(rec.events)}`],
    ['market time', `${clockEt(rec.fromMs)} – ${clockEt(rec.toMs)} ET`],
    ['speed', settings.speed],
    ['analyzers', `${settings.lba} lba${settings.analyzerInMdp ? ' + one in mdp' : ''}`],
    ['lag p99 limit', ms(settings.lagP99LimitMs)],
    ['traders', counts.format(settings.traders)],
    ['topologies', report.runs.map((run) => `${run.label} (${run.topology})`).join(', ')],
  ];
  const body = rows.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`);
  return `<table class="meta">${body.join('')}</table>`;
}

function runSection(run: LabRun): string {
  const checks = run.checks.map((check) => {
    const v = verdict(check);
    const cells = [
      `<span class="verdict ${v}">${v}</span>`,
      escapeHtml(check.name),
      escapeHtml(check.detail),
    ];
    return `<tr><td>${cells.join('</td><td>')}</td></tr>`;
  });
  const totals = totalRows(run, run.feed !== undefined).map(
    ([label, value]) => `<tr><th>${label}</th><td class="num">${escapeHtml(value)}</td></tr>`,
  );
  const exits = Object.entries(run.totals.exits).map(([name, exit]) => `${name} ${exit}`);
  totals.push(`<tr><th>exits</th><td>${escapeHtml(exits.join(', ') || '–')}</td></tr>`);
  return `<section>
<h2>Run ${escapeHtml(run.label)} <small>(${escapeHtml(run.topology)} topology)</small></h2>
<h3>Checks</h3>
<table><tr><th>verdict</th><th>check</th><th>detail</th></tr>${checks.join('')}</table>
<h3>Totals</h3>
<table>${totals.join('')}</table>
</section>`;
}

/**
 * Renders `report` as one self-contained HTML page (`report.html`): the run's settings, uPlot
 * charts over market time (events/s, queue depth, lag, drops, memory; both runs on each chart when
 * comparing), and each run's checks and totals. uPlot, the styles and the data are inlined, so the
 * page needs no network and no other file.
 */
export async function renderReport(report: LabReport): Promise<string> {
  const [uplotJs, uplotCss] = await Promise.all([
    inline(UPLOT_JS, 'script'),
    inline(UPLOT_CSS, 'style'),
  ]);
  const outcome = report.passed ? 'PASSED' : 'FAILED';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>openbell lab ${escapeHtml(report.runId)}: ${outcome}</title>
<style>${uplotCss}</style>
<style>${CSS}</style>
</head>
<body>
<h1>openbell lab report <span class="verdict ${outcome}">${outcome}</span></h1>
${metaTable(report)}
<h2>Charts <small>(market time, New York)</small></h2>
<div id="charts"><noscript>The charts need JavaScript.</noscript></div>
<div class="runs">
${report.runs.map(runSection).join('\n')}
</div>
<script type="application/json" id="lab-data">${scriptJson(report)}</script>
<script>${uplotJs}</script>
<script>${CLIENT_JS}</script>
</body>
</html>
`;
}

/** Pads every cell of `rows` to its column's width: the first column left, the others right. */
function align(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) =>
    row
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}

/**
 * A plain-text summary for the terminal and logs (no colours): the totals with one column per run,
 * each check's verdict and detail, and the overall PASSED/FAILED line.
 */
export function formatSummaryTable(report: LabReport): string {
  const { recording: rec } = report;
  const withFeed = report.runs.some((run) => run.feed !== undefined);
  const lines = [
    `openbell lab ${report.runId}: ${rec.date} ${clockEt(rec.fromMs)}-${clockEt(rec.toMs)} ET, ` +
      `${counts.format(rec.events)} events, speed ${report.settings.speed}`,
    '',
    ...align([
      ['', ...report.runs.map((run) => run.label)],
      ...totalRows(report.runs[0]!, withFeed).map(([label], n) => [
        label,
        ...report.runs.map((run) => totalRows(run, withFeed)[n]![1]),
      ]),
    ]),
  ];
  const nameWidth = Math.max(
    0,
    ...report.runs.flatMap((run) => run.checks.map((c) => c.name.length)),
  );
  for (const run of report.runs) {
    for (const fault of run.faults ?? []) {
      lines.push(
        '',
        `fault (${run.label}) ${fault.spec}: ${clockEt(fault.startMarketMs)}-${clockEt(fault.endMarketMs)} ET, ${fault.detail}`,
      );
    }
    lines.push('', `checks (${run.label}):`);
    for (const check of run.checks) {
      const v = verdict(check);
      const tag = v === 'SKIPPED' ? 'SKIP' : v;
      lines.push(`  ${tag.padEnd(4)}  ${check.name.padEnd(nameWidth)}  ${check.detail}`);
    }
  }
  lines.push('', `overall: ${report.passed ? 'PASSED' : 'FAILED'}`);
  return lines.join('\n');
}
