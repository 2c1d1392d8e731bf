import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  parseFeedLimits,
  startTelemetry,
  type MarketEvent,
  type Telemetry,
} from '../../core/index.ts';
import { WebSocket } from 'ws';
import { useIsolation } from '../../testing/harness.ts';
import { seriesValue as sample, startTestMdp, type TestMdp } from '../../testing/mdp.ts';

const OPEN = Date.parse('2026-11-24T14:30:00Z');

interface OtlpSpan {
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  links?: { traceId: string; spanId: string }[];
}

/** An OTLP/HTTP trace receiver: collects the spans the SDK exports (JSON encoding). */
async function startOtlpReceiver(): Promise<{ server: Server; url: string; spans: OtlpSpan[] }> {
  const spans: OtlpSpan[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString()) as {
        resourceSpans: { scopeSpans: { spans: OtlpSpan[] }[] }[];
      };
      for (const r of body.resourceSpans) for (const s of r.scopeSpans) spans.push(...s.spans);
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans };
}

describe('mdp telemetry', () => {
  const iso = useIsolation();
  let telemetry: Telemetry;
  let otlp: Awaited<ReturnType<typeof startOtlpReceiver>>;
  let running: TestMdp | undefined;
  beforeAll(async () => {
    otlp = await startOtlpReceiver();
    telemetry = startTelemetry({
      service: 'openbell-mdp',
      instanceId: 'mdp-test',
      otlpEndpoint: `${otlp.url}/v1/traces`,
    });
  });
  afterEach(async () => {
    await running?.close();
  });
  afterAll(async () => {
    await telemetry.shutdown();
    otlp.server.close();
  });

  it('serves every stage on /metrics, and traces a batch from listener to feed', async () => {
    running = await startTestMdp(iso(), {
      feed: { insecure: true, limits: parseFeedLimits({}), allowedOrigins: [] },
      metrics: telemetry.metricsHandler,
    });
    const { server, mdp } = running;
    const { namespace } = iso();
    const bar = (sym: string, e: number, av: number): MarketEvent => ({
      ev: 'A',
      sym,
      s: OPEN + e - 1000,
      e: OPEN + e,
      av,
      c: 10,
    });
    server.send([bar('AAPL', 1000, 100), bar('MSFT', 1000, 50)]);
    server.send([{ ev: 'T', sym: 'AAPL', t: OPEN + 1500, p: 10, s: 5 }]);
    server.send('[{"ev":"A","sym":');
    const scrape = async (): Promise<string> =>
      (await fetch(`http://127.0.0.1:${mdp.port}/metrics`)).text();
    await expect
      .poll(async () => sample(await scrape(), 'openbell_events_consumed_total'), {
        timeout: 10_000,
      })
      .toBe(3);
    // A board publication round, and the feed's tick that carries it.
    await expect
      .poll(async () => sample(await scrape(), 'openbell_board_updates_published_total'), {
        timeout: 10_000,
      })
      .toBeGreaterThan(0);
    const text = await scrape();
    // Status frames (connected, authenticated, subscribed) count too: the same as /health says.
    const health = mdp.health() as { massive: { frames: number } };
    expect(sample(text, 'openbell_massive_frames_total')).toBe(health.massive.frames);
    expect(health.massive.frames).toBeGreaterThanOrEqual(3);
    expect(sample(text, 'openbell_events_received_total{type="A"}')).toBe(2);
    expect(sample(text, 'openbell_events_received_total{type="T"}')).toBe(1);
    expect(sample(text, 'openbell_decode_errors_total{reason="invalid_json"}')).toBe(1);
    expect(sample(text, 'openbell_batches_published_total')).toBe(2);
    expect(sample(text, 'openbell_events_applied_total{type="aggregate"}')).toBe(2);
    expect(sample(text, 'openbell_events_applied_total{type="trade"}')).toBe(1);
    expect(sample(text, 'openbell_massive_connected')).toBe(1);
    expect(sample(text, 'openbell_feed_clients')).toBe(0);
    expect(
      sample(text, 'openbell_dropped_events_total{stage="listener",reason="buffer_full"}'),
    ).toBe(0);
    expect(sample(text, 'openbell_lag_seconds_count')).toBe(2);
    // Buckets resolve 100 µs to 30 s.
    expect(sample(text, 'openbell_lag_seconds_bucket{le="0.0001"}')).toBeDefined();
    expect(sample(text, 'openbell_lag_seconds_bucket{le="30"}')).toBe(2);
    expect(sample(text, 'openbell_redis_duration_seconds_count{op="apply"}')).toBeGreaterThan(0);
    // The feed's reads, one observation per tick, beside the analyzers' calls.
    await expect
      .poll(
        async () => sample(await scrape(), 'openbell_redis_duration_seconds_count{op="feed_read"}'),
        { timeout: 5000 },
      )
      .toBeGreaterThan(0);
    expect(sample(text, 'openbell_process_resident_memory_bytes')).toBeGreaterThan(1e6);
    expect(text).toMatch(/^target_info\{[^}]*service_name="openbell-mdp"/m);
    expect(text).toMatch(/service_instance_id="mdp-test"/);
    await expect
      .poll(
        async () =>
          sample(
            await scrape(),
            'openbell_queue_depth{queue="' + `${namespace}.analyzers` + '",kind="events"}',
          ),
        { timeout: 5000 },
      )
      .toBeDefined();

    const promtool = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(promtool.error).toBeUndefined();
    // promtool lints names and help; openbell's families must pass without a complaint.
    expect(promtool.stdout + promtool.stderr).toBe('');
    expect(promtool.status).toBe(0);

    // Traces: listener publish → analyzer apply (child, via the AMQP headers) → board
    // publication (linked) → feed tick (child of the publication, via pub/sub), when the tick
    // sends the update to a trader. The feed learns the trading date from the first publication:
    // later ones reach it.
    const trader = new WebSocket(`ws://127.0.0.1:${mdp.port}/ws`, ['openbell.v1']);
    await once(trader, 'open');
    trader.send(JSON.stringify({ op: 'subscribe', channels: ['board:volume'] }));
    let volume = 100;
    await expect
      .poll(
        async () => {
          server.send([bar('AAPL', 2000, (volume += 10))]);
          await new Promise((resolve) => setTimeout(resolve, 200));
          await telemetry.flushTraces();
          return otlp.spans.some((s) => s.name === 'openbell.feed tick');
        },
        { timeout: 10_000 },
      )
      .toBe(true);
    const named = (name: string): OtlpSpan[] => otlp.spans.filter((s) => s.name === name);
    const published = named('openbell.batch publish');
    const applied = named('openbell.batch apply');
    expect(published.length).toBeGreaterThanOrEqual(3);
    expect(applied.length).toBeGreaterThanOrEqual(3);
    for (const apply of applied) {
      const parent = published.find((p) => p.spanId === apply.parentSpanId);
      expect(parent?.traceId).toBe(apply.traceId);
    }
    const rounds = named('openbell.boards publish');
    const linked = rounds.flatMap((r) => r.links ?? []).map((l) => l.spanId);
    // Each publication continues the newest batch it carries and links every one of them.
    expect(rounds.length).toBeGreaterThan(0);
    const appliedIds = applied.map((a) => a.spanId);
    expect(rounds.every((r) => appliedIds.includes(r.parentSpanId ?? ''))).toBe(true);
    expect(linked.length).toBeGreaterThan(0);
    expect(linked.every((id) => appliedIds.includes(id))).toBe(true);
    const ticks = named('openbell.feed tick');
    expect(ticks.some((t) => rounds.some((r) => r.spanId === t.parentSpanId))).toBe(true);
    trader.terminate();
  });
});
