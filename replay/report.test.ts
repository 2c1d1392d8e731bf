import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import vm from 'node:vm';
import uPlot from 'uplot';
import { describe, expect, it } from 'vitest';
import { newYorkTimeToMs } from '../core/index.ts';
import type { LabCheck, LabReport, LabRun, LabSample } from './lab-types.ts';
import { formatSummaryTable, renderReport } from './report.ts';

const require = createRequire(import.meta.url);
const HOSTILE = '</script><script>alert(1)</script><!--';
const DATE = '2025-03-14';
const OPEN_MS = newYorkTimeToMs(DATE, '09:30');
const CHROMIUM = '/usr/bin/chromium';
const PLAYWRIGHT = 'playwright-core';

/** 30 samples a second apart from 09:29:45 ET; `poc` lags ever more after the open and drains. */
function samples(poc: boolean): LabSample[] {
  return Array.from({ length: 30 }, (_, i) => {
    const afterOpen = Math.max(0, i - 15);
    const lagP99 = poc ? 80 * 2 ** afterOpen : 90 + (i % 3);
    // The replay has ended: market time stands still while the queue drains.
    const drain = poc && i >= 27;
    return {
      wallMs: OPEN_MS + 3_600_000 + i * 1000,
      marketMs: OPEN_MS - 15_000 + (drain ? 26_400 : i * 1000 + (poc ? 400 : 0)),
      sentPerSec: drain ? 0 : 2000 + afterOpen * 4000,
      inPerSec: {
        T: 900 + afterOpen * 2000,
        Q: 1100 + afterOpen * 2000,
        ...(i > 20 && { LULD: 3 }),
      },
      appliedPerSec: poc ? 2000 : 2000 + afterOpen * 4000,
      queueDepth: poc ? afterOpen * 40 : i % 2,
      lagP50Ms: i < 2 || (poc && i === 20) ? null : lagP99 / 4,
      lagP99Ms: i < 2 || (poc && i === 20) ? null : lagP99,
      listenerDrops: 0,
      expired: poc ? afterOpen * 150 : 0,
      maxLengthDrops: 0,
      feedLatencyP99Ms: poc || i < 3 ? null : 5 + (i % 4),
      rssMiB: { mdp: 80 + i, 'lba-1': 70 + i / 2, replayer: 60 },
    };
  });
}

function run(label: 'default' | 'poc', checks: LabCheck[]): LabRun {
  const poc = label === 'poc';
  return {
    label,
    topology: label,
    runLabel: poc ? 'r1-poc' : 'r1',
    window: { startMs: 1_000, endMs: 61_000 },
    samples: samples(poc),
    checks,
    totals: {
      sentEvents: 210_000,
      receivedEvents: 210_000,
      appliedEvents: poc ? 180_000 : 210_000,
      listenerDrops: 0,
      expired: poc ? 30_000 : 0,
      maxLengthDrops: 0,
      lagP50Ms: poc ? 2400 : 22.5,
      lagP99Ms: poc ? 1_310_720 : 92,
      lagMaxMs: poc ? 1_400_000 : 140,
      latenessP50Ms: 0.4,
      latenessP99Ms: 3.2,
      wallSeconds: poc ? 42.7 : 31.2,
      exits: { mdp: '0', 'lba-1': poc ? 'SIGKILL' : '0', replayer: '0' },
    },
  };
}

function fixture(): LabReport {
  return {
    runId: '20250314-132945',
    startedAt: '2025-03-14T13:29:45.000Z',
    recording: {
      path: `recordings/${DATE}${HOSTILE}.ndjson.gz`,
      date: DATE,
      frames: 12_345,
      events: 210_000,
      fromMs: OPEN_MS - 15_000,
      toMs: OPEN_MS + 15_000,
    },
    settings: { speed: '1x', lba: 2, analyzerInMdp: false, lagP99LimitMs: 1000, traders: 0 },
    openMs: OPEN_MS,
    runs: [
      run('default', [
        { name: 'lag-p99', passed: true, detail: 'p99 92 ms <= 1000 ms' },
        { name: 'no-drops', passed: true, detail: '0 dropped, 0 expired' },
        { name: 'oracle', passed: true, detail: `boards match ${HOSTILE}` },
      ]),
      run('poc', [
        { name: 'lag-p99', passed: false, detail: 'p99 1310720 ms > 1000 ms' },
        { name: 'no-drops', passed: false, detail: '30000 expired' },
        { name: 'oracle', passed: false, skipped: true, detail: 'events were dropped' },
      ]),
    ],
    passed: false,
  };
}

/** The bodies of the page's `<script>` elements, in order. */
function scripts(html: string): string[] {
  return [...html.matchAll(/<script[^>]*>([\s\S]*?)<\/script>/g)].map((m) => m[1]!);
}

interface FakePlot {
  opts: {
    title: string;
    series: { label?: string }[];
    axes: { values: (u: unknown, splits: number[]) => string[] }[];
    hooks: { draw: ((u: unknown) => void)[] };
  };
  data: (number | null | undefined)[][];
}

/** Runs the page's chart script in Node on a stand-in DOM, recording uPlot's constructor calls. */
function runClient(html: string): { plots: FakePlot[]; root: { textContent: string } } {
  const [json, , client] = scripts(html);
  const plots: FakePlot[] = [];
  const root = { clientWidth: 900, textContent: '' };
  const fake = Object.setPrototypeOf(function (opts: FakePlot['opts'], data: FakePlot['data']) {
    plots.push({ opts, data });
  }, uPlot) as object; // uPlot's statics (join, fmtDate, tzDate, …) are the real ones
  Object.assign(fake, { pxRatio: 1 });
  const document = {
    getElementById: (id: string) => (id === 'lab-data' ? { textContent: json } : root),
  };
  vm.runInNewContext(client!, { document, window: { addEventListener() {} }, uPlot: fake });
  return { plots, root };
}

/** The labels a chart's draw hook writes on a stand-in canvas. */
function markerLabels(plot: FakePlot): string[] {
  const labels: string[] = [];
  const noop = () => {};
  const ctx = { save: noop, restore: noop, setLineDash: noop, beginPath: noop, moveTo: noop };
  Object.assign(ctx, { lineTo: noop, stroke: noop, fillText: (text: string) => labels.push(text) });
  const u = { ctx, bbox: { left: 0, top: 0, width: 800, height: 200 }, valToPos: () => 100 };
  for (const draw of plot.opts.hooks.draw) draw(u);
  return labels;
}

describe('renderReport', () => {
  it('renders one self-contained HTML document', async () => {
    const html = await renderReport(fixture());
    expect(html.startsWith('<!doctype html>\n<html lang="en">')).toBe(true);
    expect(html.trimEnd().endsWith('</html>')).toBe(true);
    expect(html.match(/<html/g)).toHaveLength(1);
    expect(html).not.toMatch(/\b(src|href)\s*=\s*["']?\s*(https?:|file:|\/\/)/i);
    expect(html).not.toMatch(/<script[^>]*\ssrc=|<link\b/i);
    expect(html).toContain('<span class="verdict FAILED">FAILED</span>');
    expect(html).toContain('<span class="verdict FAIL">FAIL</span>');
    expect(html).toContain('<span class="verdict SKIPPED">SKIPPED</span>');
    expect(html).toContain('09:29:45 – 09:30:15 ET');
  });

  it('inlines uPlot', async () => {
    const html = await renderReport(fixture());
    expect(html).toContain(readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8'));
    expect(html).toContain(readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8'));
    expect(html).toContain('var uPlot=function()');
  });

  it('embeds the report as JSON that parses back to the same data', async () => {
    const report = fixture();
    const html = await renderReport(report);
    const json = /<script type="application\/json" id="lab-data">([\s\S]*?)<\/script>/.exec(html);
    expect(JSON.parse(json![1]!)).toEqual(report);
  });

  it('keeps hostile strings inside their element, escaped', async () => {
    const html = await renderReport(fixture());
    expect(html).not.toContain('</script><script>alert');
    expect(html).not.toContain('<!--');
    expect(scripts(html)).toHaveLength(3);
    expect(html).toContain('&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;!--');
  });

  it('draws six charts with both runs aligned on market time', async () => {
    const report = fixture();
    const { plots } = runClient(await renderReport(report));
    expect(plots.map((p) => p.opts.title)).toEqual([
      'Events/s',
      'Queue depth (messages)',
      'End-to-end lag (log scale)',
      'Trader delivery latency p99 (ms)',
      'Drops and expiries (cumulative)',
      'Memory (RSS, MiB)',
    ]);
    const [, delivery] = plots[3]!.data;
    expect(delivery!.filter((v) => typeof v === 'number')).toHaveLength(27);
    const lag = plots[2]!;
    expect(lag.opts.series.map((s) => s.label)).toEqual([
      undefined,
      'default lag p50',
      'default lag p99',
      'poc lag p50',
      'poc lag p99',
    ]);
    const [xs, defaultP50, , pocP50, pocP99] = lag.data;
    expect(xs).toHaveLength(60); // the poc's 3 drain samples at one market time, nudged by 1 ms
    expect(xs!.every((x, i) => i === 0 || x! > xs![i - 1]!)).toBe(true);
    expect(defaultP50![0]).toBeNull(); // nothing applied yet: a gap
    expect(pocP50![0]).toBeUndefined(); // no poc sample at that time: spanned
    expect(pocP99!.filter((v) => v === null)).toHaveLength(3);
    expect(Math.max(...pocP99!.filter((v) => typeof v === 'number'))).toBe(80 * 2 ** 14);
    expect(plots[0]!.opts.series.map((s) => s.label)).toContain('poc received LULD');
    expect(plots[5]!.opts.series.map((s) => s.label)).toContain('default lba-1');
    expect(plots[0]!.opts.axes[0]!.values(null, [OPEN_MS / 1000, OPEN_MS / 1000 + 75])).toEqual([
      '09:30:00',
      '09:31:15',
    ]);
    for (const plot of plots) expect(markerLabels(plot)).toContain('09:30 open');
    expect(markerLabels(lag)).toContain('p99 limit 1000 ms');
  });

  it('leaves the delivery chart out of a run without traders', async () => {
    const report = fixture();
    for (const run of report.runs)
      run.samples = run.samples.map((sample) => ({ ...sample, feedLatencyP99Ms: null }));
    const { plots } = runClient(await renderReport(report));
    expect(plots.map((p) => p.opts.title)).not.toContain('Trader delivery latency p99 (ms)');
    expect(plots).toHaveLength(5);
  });

  it('shows a note instead of charts when nothing was sampled', async () => {
    const report = fixture();
    report.runs = report.runs.slice(0, 1).map((r) => ({ ...r, samples: [] }));
    const { plots, root } = runClient(await renderReport(report));
    expect(plots).toHaveLength(0);
    expect(root.textContent).toBe('No samples were recorded.');
  });

  it.skipIf(!existsSync(CHROMIUM) || !canResolve(PLAYWRIGHT))(
    'draws every chart in headless Chromium without console errors',
    async () => {
      const { chromium } = (await import(PLAYWRIGHT)) as PlaywrightCore;
      const browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: ['--no-sandbox', '--disable-background-networking'],
      });
      try {
        const page = await browser.newPage();
        const errors: string[] = [];
        const requests: string[] = [];
        page.on('console', (m) => void (m.type() === 'error' && errors.push(m.text())));
        page.on('pageerror', (e) => void errors.push(e.message));
        page.on('request', (r) => void requests.push(r.url()));
        await page.setContent(await renderReport(fixture()));
        await page.waitForFunction(`document.querySelectorAll('#charts canvas').length === 6`);
        const inked =
          await page.evaluate(`[...document.querySelectorAll('#charts canvas')].map((c) =>
          c.getContext('2d').getImageData(0, 0, c.width, c.height).data.some((v) => v > 0))`);
        expect(inked).toEqual([true, true, true, true, true, true]);
        expect(errors).toEqual([]);
        expect(requests).toEqual([]);
      } finally {
        await browser.close();
      }
    },
  );
});

describe('formatSummaryTable', () => {
  it('lists the totals, every check and the verdict in plain text', () => {
    const table = formatSummaryTable(fixture());
    expect(table).not.toContain('\u001b');
    for (const check of ['lag-p99', 'no-drops', 'oracle']) expect(table).toContain(check);
    expect(table).toMatch(/^ {2}PASS {2}lag-p99 {3}p99 92 ms <= 1000 ms$/m);
    expect(table).toMatch(/^ {2}FAIL {2}lag-p99 {3}p99 1310720 ms > 1000 ms$/m);
    expect(table).toMatch(/^ {2}SKIP {2}oracle {4}events were dropped$/m);
    expect(table).toMatch(/^lag p99 +92 ms +1,310,720 ms$/m);
    expect(table).toMatch(/^events applied +210,000 +180,000$/m);
    expect(table.trimEnd().endsWith('overall: FAILED')).toBe(true);
    expect(formatSummaryTable({ ...fixture(), passed: true })).toMatch(/overall: PASSED$/);
  });

  it('lists each injected fault with its market times and what was done', () => {
    const report = fixture();
    const openMs = report.openMs;
    report.runs[0]!.faults = [
      {
        kind: 'rabbitmq-kill',
        spec: 'rabbitmq-kill@+20s:10s',
        startWallMs: 1,
        endWallMs: 2,
        startMarketMs: openMs + 5000,
        endMarketMs: openMs + 15_000,
        detail: 'killed (SIGKILL) rabbitmq, started it again 10000 ms later',
      },
    ];
    expect(formatSummaryTable(report)).toMatch(
      /^fault \(default\) rabbitmq-kill@\+20s:10s: 09:30:05-09:30:15 ET, killed \(SIGKILL\) rabbitmq, started it again 10000 ms later$/m,
    );
  });
});

function canResolve(name: string): boolean {
  try {
    require.resolve(name);
    return true;
  } catch {
    return false;
  }
}

/** The little of playwright-core's API the browser test uses (it is not a dependency). */
interface PlaywrightCore {
  chromium: {
    launch(options: { executablePath: string; args: string[] }): Promise<{
      newPage(): Promise<BrowserPage>;
      close(): Promise<void>;
    }>;
  };
}

interface BrowserPage {
  on(event: 'console', listener: (message: { type(): string; text(): string }) => void): void;
  on(event: 'pageerror', listener: (error: Error) => void): void;
  on(event: 'request', listener: (request: { url(): string }) => void): void;
  setContent(html: string): Promise<void>;
  waitForFunction(expression: string): Promise<unknown>;
  evaluate(expression: string): Promise<unknown>;
}
