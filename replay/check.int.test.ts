import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS, parseConnectionOptions } from '../core/index.ts';
import { loadDashboards } from '../grafana/dashboards.ts';
import { serviceUrls } from '../testing/harness.ts';
import type { CheckReport, RunCheckResult } from './check.ts';
import { checkLabRun } from './check-main.ts';
import { runLab } from './lab.ts';
import { findPrometheus } from './lab-prometheus.ts';
import type { LabReport } from './lab-types.ts';
import { ensureMarketOpen } from './scenario.ts';

const CLI = fileURLToPath(new URL('../cli/main.ts', import.meta.url));
/**
 * The stampede knob: each analyzer holds every batch this long, one after another. At 1x over
 * 09:29:59–09:30:02 the burst's batches arrive faster than 1 / 30 ms, so the queue (and the lag)
 * grows to seconds: p99 ~4–5 s here against the dashboard's 1 s, and CPU contention only slows
 * the drain further. The default run's p99 stays near 0.1 s.
 */
const POC_DELAY_MS = 30;

/** `openbell …` in its own process group, so a timeout also stops the Prometheus it started. */
function openbell(
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const panelOf = (run: RunCheckResult | undefined, uid: string, title: string) => {
  const panel = run?.panels.find((p) => p.dashboardUid === uid && p.panel === title);
  if (panel === undefined) throw new Error(`no panel ${uid} / ${title} in the check`);
  return panel;
};
const lagOf = (run: RunCheckResult | undefined) =>
  panelOf(run, 'openbell-pipeline', 'End-to-end lag');

describe('openbell check', () => {
  const runId = `chk${randomBytes(3).toString('hex')}`;
  let out = '';
  let lab: LabReport;
  let live: CheckReport | undefined;

  beforeAll(async () => {
    out = await mkdtemp(join(tmpdir(), 'openbell-check-'));
    const binary = findPrometheus();
    if (binary === undefined)
      throw new Error('no prometheus binary (the global setup installs one)');
    const urls = serviceUrls();
    lab = await runLab({
      recordingPath: await ensureMarketOpen(),
      speed: '1',
      from: '09:29:59',
      to: '09:30:02',
      lba: 1,
      connection: parseConnectionOptions({ redisUrl: urls.redisUrl, amqpUrl: urls.amqpUrl }),
      board: DEFAULTS.board,
      lagP99LimitMs: 1000,
      outDir: join(out, runId),
      runId,
      log: pino({ level: 'warn' }),
      compare: 'poc',
      pocDelayMs: POC_DELAY_MS,
      withPrometheus: { binary },
      // What `openbell lab --check` does: the lab's own Prometheus, still running.
      whilePrometheus: async (report, prometheusUrl) => {
        live = await checkLabRun({ report, dir: join(out, runId), prometheusUrl });
      },
    });
  }, 150_000);

  afterAll(async () => {
    if (out !== '') await rm(out, { recursive: true, force: true });
  });

  it('passes the default run on every threshold and fails the stampede run on lag p99', async () => {
    const checked = (await loadDashboards()).flatMap((d) => d.panels.filter((p) => p.check));
    expect(live?.scrapeIntervalS).toBe(1);
    const [normal, poc] = live!.runs;
    expect(live!.runs.map((r) => [r.label, r.runLabel, r.stepS, r.rateInterval])).toEqual([
      ['default', runId, 1, '4s'],
      ['poc', `${runId}-poc`, 1, '4s'],
    ]);
    expect(normal!.panels).toHaveLength(checked.length);
    const notPassed = normal!.panels.filter((p) => p.verdict !== 'pass');
    expect(notPassed.map((p) => `${p.panel}: ${p.reasons.join('; ')}`)).toEqual([]);
    // It passed on data, not for lack of it.
    expect(lagOf(normal).series).toBe(1);
    expect(lagOf(normal).worst?.max?.value).toBeGreaterThan(0);
    expect(lagOf(normal).worst?.max?.value).toBeLessThan(1);
    const applied = panelOf(normal, 'openbell-analyzers', 'Events applied, all analyzers');
    expect(applied.worst?.min?.value).toBeGreaterThan(1000);
    // The lab's in-process replayer has no /metrics here: no timed-replay series to judge.
    expect(panelOf(normal, 'openbell-replay', 'Frame lateness').worst).toBeNull();

    expect(lagOf(poc).verdict).toBe('fail');
    expect(lagOf(poc).worst!.max!.value).toBeGreaterThan(2);
    expect(lagOf(poc).reasons[0]).toMatch(/^[\d.]+ s > max 1 s$/);
    expect(poc!.passed).toBe(false);
    // The stampede is the report's second run: shown, never the verdict.
    expect(live!.passed).toBe(true);
    expect(lab.runs[1]!.checks.find((c) => c.name === 'lag-p99')?.passed).toBe(false);
    const json = JSON.parse(await readFile(join(out, runId, 'check.json'), 'utf8')) as CheckReport;
    expect(json).toMatchObject({ runId, passed: true });
  });

  it('restarts the archived Prometheus, prints the same values for both runs, and exits 0', async () => {
    const { code, stdout, stderr } = await openbell(['check', '--run', runId, '--out', out]);
    expect(code, stderr).toBe(0);
    for (const title of [
      'End-to-end lag',
      'Dropped events over the run',
      'Dropped batches over the run',
      'Events applied, all analyzers',
      'Slow closes over the run',
      'Event-loop delay p99, worst process',
      'Frame lateness',
    ])
      expect(stdout).toContain(title);
    expect(stdout).toMatch(new RegExp(`End-to-end lag +${runId} +[\\d.]+ ms +≤ 1 s +PASS`));
    expect(stdout).toMatch(new RegExp(`End-to-end lag +${runId}-poc +[\\d.]+ s +≤ 1 s +FAIL`));
    expect(stdout).toContain(`default (${runId}): PASS, 0 of 7 panels failed`);
    expect(stdout).toContain('check: PASSED');
    const archived = JSON.parse(
      await readFile(join(out, runId, 'check.json'), 'utf8'),
    ) as CheckReport;
    for (const i of [0, 1])
      expect(lagOf(archived.runs[i]).worst?.max?.value).toBeCloseTo(
        lagOf(live!.runs[i]).worst!.max!.value,
        6,
      );
  }, 90_000);

  it('exits 1 for the stampede judged as a run of its own, against the good run as baseline', async () => {
    // A report whose default run is the stampede: its series, window and archive.
    const poc = lab.runs[1]!;
    await mkdir(join(out, 'worse'));
    const worse = {
      runId: 'worse',
      prometheusDir: join('..', runId, 'prometheus'),
      runs: [{ label: 'default', runLabel: poc.runLabel, window: poc.window }],
    };
    await writeFile(join(out, 'worse', 'summary.json'), JSON.stringify(worse));
    const { code, stdout, stderr } = await openbell([
      'check',
      '--run',
      'worse',
      '--out',
      out,
      '--baseline',
      runId,
    ]);
    expect(code, stderr).toBe(1);
    expect(stdout).toMatch(/^DASHBOARD +PANEL +RUN +VALUE +THRESHOLD +BASELINE +VERDICT +DETAIL$/m);
    expect(stdout).toMatch(
      new RegExp(
        `End-to-end lag +${runId}-poc +[\\d.]+ s +≤ 1 s +[\\d.]+ ms → ≤ [\\d.]+ ms +FAIL +[\\d.]+ s > max 1 s; baseline: `,
      ),
    );
    expect(stdout).toContain('check: FAILED');
    const json = JSON.parse(
      await readFile(join(out, 'worse', 'check.json'), 'utf8'),
    ) as CheckReport;
    expect(lagOf(json.runs[0]).baseline).toMatchObject({
      runLabel: runId,
      source: 'check.json',
      status: 'fail',
    });
  }, 90_000);

  it('refuses lab --check without a Prometheus, naming the flag', async () => {
    const { code, stderr } = await openbell(['lab', '--check', '--no-prometheus']);
    expect(code).toBe(1);
    expect(stderr).toContain(
      'lab: --check evaluates the run on its Prometheus: drop --no-prometheus',
    );
  });
});
