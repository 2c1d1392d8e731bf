import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { useIsolation } from '../testing/harness.ts';
import { seriesValue as sample, startTestMdp, type TestMdp } from '../testing/mdp.ts';
import { loadExporterConfig } from './config.ts';
import { promtoolCheckMetrics } from './promtool.ts';
import { createExporter, type Exporter } from './server.ts';

const OPEN = Date.parse('2026-11-24T14:30:00Z');
const log = pino({ level: 'silent' });

interface Health {
  status: string;
  massive: { state: string; frames: number; events: number; bytes: number };
  decodeIssues: Record<string, number>;
  listener: { events: Record<string, number>; batches: number };
  publisher: { published: number; confirmed: number };
  analyzer: { events: number; lagMs: { p50: number; max: number } };
}

describe('exporter against a live mdp', () => {
  const iso = useIsolation();
  let running: TestMdp | undefined;
  let exporter: Exporter | undefined;
  afterEach(async () => {
    await exporter?.close();
    await running?.close();
  });

  it('maps the mdp /health document with exporter/openbell.yml', async () => {
    running = await startTestMdp(iso());
    const { server, mdp } = running;
    server.send([
      { ev: 'A', sym: 'AAPL', s: OPEN, e: OPEN + 1000, av: 100, c: 101 },
      { ev: 'T', sym: 'AAPL', t: OPEN + 500, p: 101, s: 10 },
    ]);
    server.send([{ ev: 'T', sym: 'MSFT', t: OPEN + 700, p: 400, s: 5 }]);
    server.send('[{"ev":"T",');
    const health = async (): Promise<Health> =>
      (await (await fetch(`http://127.0.0.1:${mdp.port}/health`)).json()) as Health;
    await expect.poll(async () => (await health()).analyzer.events, { timeout: 15_000 }).toBe(3);
    await expect.poll(async () => (await health()).status, { timeout: 10_000 }).toBe('ok');

    const { config, baseDir } = loadExporterConfig('exporter/openbell.yml');
    exporter = createExporter({ config, baseDir, host: '127.0.0.1', port: 0, log });
    await exporter.start();
    const target = `http://127.0.0.1:${mdp.port}/health`;
    const response = await fetch(
      `http://127.0.0.1:${exporter.port}/probe?module=openbell&target=${encodeURIComponent(target)}`,
    );
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('version=0.0.4');
    const text = await response.text();
    const now = await health();

    expect(sample(text, 'probe_success')).toBe(1);
    expect(sample(text, 'probe_duplicate_series')).toBe(0);
    for (const reason of ['missing', 'not_a_number', 'ambiguous', 'not_an_object'])
      expect(sample(text, `probe_skipped_values{reason="${reason}"}`), reason).toBe(0);
    expect(sample(text, 'openbell_health_status')).toBe(1);
    expect(sample(text, 'openbell_health_massive_streaming')).toBe(1);
    expect(sample(text, 'openbell_health_massive_state_info{state="streaming"}')).toBe(1);
    // Status frames (connected, auth, subscribed) count too.
    expect(now.massive.frames).toBeGreaterThanOrEqual(3);
    expect(sample(text, 'openbell_health_massive_frames_total')).toBe(now.massive.frames);
    expect(sample(text, 'openbell_health_massive_events_total')).toBe(now.massive.events);
    expect(sample(text, 'openbell_health_massive_bytes_total')).toBe(now.massive.bytes);
    expect(now.decodeIssues).toEqual({ invalid_json: 1 });
    expect(sample(text, 'openbell_health_decode_issues_total{reason="invalid_json"}')).toBe(1);
    expect(now.listener.events).toEqual({ A: 1, T: 2 });
    expect(sample(text, 'openbell_health_listener_events_total{type="A"}')).toBe(1);
    expect(sample(text, 'openbell_health_listener_events_total{type="T"}')).toBe(2);
    expect(sample(text, 'openbell_health_publisher_confirmed_total')).toBe(now.publisher.confirmed);
    expect(sample(text, 'openbell_health_publisher_connected')).toBe(1);
    expect(sample(text, 'openbell_health_ledger_accepted_events_total')).toBe(3);
    expect(sample(text, 'openbell_health_ledger_dropped_events_total{drop="publisher/lost"}')).toBe(
      0,
    );
    expect(sample(text, 'openbell_health_analyzer_events_total')).toBe(3);
    // `scale: 0.001` multiplies: 26 × 0.001 is 0.026000000000000002, not 26 / 1000.
    expect(sample(text, 'openbell_health_analyzer_lag_max_seconds')).toBeCloseTo(
      now.analyzer.lagMs.max / 1000,
      12,
    );
    expect(sample(text, 'openbell_health_consumer_connected')).toBe(1);
    // No feed in this mdp: its metrics are absent, not counted as skipped (allow_missing_key).
    expect(text).not.toContain('openbell_health_feed_');
    expect(promtoolCheckMetrics(text)).toEqual({ status: 0, output: '' });
  });
});
