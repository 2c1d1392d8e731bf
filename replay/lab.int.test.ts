import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULTS, parseConnectionOptions } from '../core/index.ts';
import { serviceUrls } from '../testing/harness.ts';
import { runLab } from './lab.ts';
import { parseFaultSpec } from './lab-faults.ts';
import type { LabReport } from './lab-types.ts';
import { ensureMarketOpen } from './scenario.ts';

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('openbell lab', () => {
  it('replays the opening seconds of the bundled scenario through mdp and an lba, and passes its checks', async () => {
    const out = await mkdtemp(join(tmpdir(), 'openbell-lab-'));
    dirs.push(out);
    const urls = serviceUrls();
    const report = await runLab({
      recordingPath: await ensureMarketOpen(),
      speed: '2',
      from: '09:29:58',
      to: '09:30:04',
      lba: 1,
      connection: parseConnectionOptions({ redisUrl: urls.redisUrl, amqpUrl: urls.amqpUrl }),
      board: DEFAULTS.board,
      lagP99LimitMs: 5000,
      outDir: out,
      runId: '20261124T093000-CI',
      log: pino({ level: 'warn' }),
      traders: 20,
    });
    const [run] = report.runs;
    expect(run?.checks.map((c) => [c.name, c.passed, c.skipped ?? false])).toEqual([
      ['processes', true, false],
      ['oracle', true, false],
      ['drops', true, true],
      ['lag-p99', true, false],
      ['recovery', true, false],
      ['ledger', true, false],
      ['feed', true, false],
    ]);
    expect(run!.ledger).toMatchObject({ unaccounted: 0, dropped: {} });
    expect(run!.ledger!.accepted).toBe(run!.totals.sentEvents);
    // Traders on the mdp's feed saw the boards move, every one of them, without a gap.
    expect(run!.feed).toMatchObject({ clients: 20, subscribed: 20, seqGaps: 0, disconnects: 0 });
    expect(run!.feed!.updates).toBeGreaterThan(20);
    // The burst's first seconds: tens of thousands of events, every one received and applied.
    expect(run!.totals.sentEvents).toBeGreaterThan(20_000);
    expect(run!.totals.appliedEvents).toBe(run!.totals.sentEvents);
    expect(run!.samples.length).toBeGreaterThanOrEqual(2);
    const summary = JSON.parse(await readFile(join(out, 'summary.json'), 'utf8')) as LabReport;
    expect(summary.passed).toBe(true);
    expect(await readFile(join(out, 'report.html'), 'utf8')).toContain('id="lab-data"');
  }, 120_000);
});

describe('openbell lab --compare poc', () => {
  it('shows the stampede: slowed analyzers fall seconds behind where the default pipeline keeps up', async () => {
    const out = await mkdtemp(join(tmpdir(), 'openbell-lab-poc-'));
    dirs.push(out);
    const urls = serviceUrls();
    const report = await runLab({
      recordingPath: await ensureMarketOpen(),
      speed: '2',
      from: '09:29:59',
      to: '09:30:05',
      lba: 1,
      connection: parseConnectionOptions({ redisUrl: urls.redisUrl, amqpUrl: urls.amqpUrl }),
      board: DEFAULTS.board,
      lagP99LimitMs: 1000,
      outDir: out,
      runId: 'cmp',
      log: pino({ level: 'warn' }),
      compare: 'poc',
      pocDelayMs: 100,
    });
    const [normal, poc] = report.runs;
    expect(report.runs.map((r) => r.label)).toEqual(['default', 'poc']);
    expect(report.passed).toBe(true);
    expect(normal!.totals.lagP99Ms).toBeLessThan(1000);
    expect(poc!.totals.lagP99Ms).toBeGreaterThan(1000);
    expect(poc!.checks.find((c) => c.name === 'lag-p99')?.passed).toBe(false);
    // Both runs land on one chart: the report embeds both series.
    const html = await readFile(join(out, 'report.html'), 'utf8');
    expect(html).toContain('"label":"poc"');
  }, 180_000);
});

describe('openbell lab --fault', () => {
  it('kills the broker and an lba mid-run on private services, and still accounts for every event', async () => {
    const out = await mkdtemp(join(tmpdir(), 'openbell-lab-fault-'));
    dirs.push(out);
    const urls = serviceUrls();
    const report = await runLab({
      recordingPath: await ensureMarketOpen(),
      speed: '1',
      // Long enough for the lag to be measured again after the broker is back (~8 s to start).
      from: '09:29:58',
      to: '09:30:22',
      lba: 2,
      connection: parseConnectionOptions({ redisUrl: urls.redisUrl, amqpUrl: urls.amqpUrl }),
      board: DEFAULTS.board,
      lagP99LimitMs: 30_000,
      outDir: out,
      runId: 'fault',
      log: pino({ level: 'warn' }),
      faults: [parseFaultSpec('rabbitmq-kill@+2s:2s'), parseFaultSpec('lba-kill@+3s')],
    });
    const [run] = report.runs;
    expect(report.settings).toMatchObject({
      privateServices: true,
      faults: ['rabbitmq-kill@+2s:2s', 'lba-kill@+3s'],
    });
    expect(run!.faults?.map((f) => f.kind)).toEqual(['lba-kill', 'rabbitmq-kill']);
    const verdicts = Object.fromEntries(run!.checks.map((c) => [c.name, c.passed]));
    expect(verdicts).toMatchObject({
      processes: true,
      ledger: true,
      'recovery:rabbitmq-kill': true,
      'recovery:lba-kill': true,
    });
    expect(run!.ledger!.accepted).toBe(run!.totals.sentEvents);
    // The killed lba is reported as killed by the fault, and its replacement ran.
    expect(run!.totals.exits).toMatchObject({ 'lba-1': 'killed by a fault', 'lba-1b': '0' });
    expect(await readFile(join(out, 'report.html'), 'utf8')).toContain('"kind":"rabbitmq-kill"');
  }, 240_000);
});
