import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import {
  createBoardStore,
  parseBoardOptions,
  parseFeedLimits,
  startTelemetry,
  type DependencyHealth,
  type MarketEvent,
  type Telemetry,
} from '../../core/index.ts';
import { useIsolation } from '../../testing/harness.ts';
import { seriesValue, startTestMdp, type TestMdp } from '../../testing/mdp.ts';
import { usePrivateServices } from '../../testing/private-services.ts';
import { createFeedServer } from './feed-server.ts';

const DATE = '2026-11-24';
const OPEN = Date.parse('2026-11-24T14:30:00Z');

interface Health {
  status: string;
  dependencies: Record<string, DependencyHealth>;
  state: { checks: number; losses: Record<string, number>; restores: number } | null;
}

const bar = (sym: string, n: number, c: number): MarketEvent => ({
  ev: 'A',
  sym,
  s: OPEN + n * 1000,
  e: OPEN + n * 1000 + 1000,
  av: 100 * (n + 1),
  c,
});

describe('mdp and a Redis that loses its state', () => {
  const iso = useIsolation();
  const services = usePrivateServices();
  const dir = mkdtempSync(join(tmpdir(), 'openbell-mdp-state-'));
  const prevCloseFile = join(dir, 'prev-close.json');
  writeFileSync(prevCloseFile, JSON.stringify({ AAPL: 100, MSFT: 200 }));
  let telemetry: Telemetry;
  const cleanups: (() => Promise<unknown> | void)[] = [];
  beforeAll(() => {
    telemetry = startTelemetry({ service: 'openbell-mdp', instanceId: 'mdp-state-test' });
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  afterAll(async () => {
    await telemetry.shutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  const start = async (redisUrl: string): Promise<TestMdp & { redis: Redis }> => {
    const started = await startTestMdp(
      { ...iso(), redisUrl },
      {
        prevCloses: { kind: 'file', path: prevCloseFile, date: DATE },
        stateGuard: { intervalMs: 100, degradedMs: 1500 },
        metrics: telemetry.metricsHandler,
      },
    );
    cleanups.push(() => started.close());
    const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
    redis.on('error', () => undefined);
    cleanups.push(() => redis.disconnect());
    return { ...started, redis };
  };
  const get = (port: number, path: string) => fetch(`http://127.0.0.1:${port}${path}`);
  const health = async (port: number) => (await (await get(port, '/health')).json()) as Health;
  const losses = async (port: number) =>
    seriesValue(
      await (await get(port, '/metrics')).text(),
      'openbell_state_losses_total{kind="emptied"}',
    );
  const gappers = async (redis: Redis) =>
    (
      await createBoardStore({ redis, names: iso().names, board: parseBoardOptions() }).readBoards(
        DATE,
      )
    ).boards.gappers.map((row) => row.sym);

  it('detects a restart without an append-only file, says so in /health, reloads the previous closes and the gappers refill', async () => {
    const service = await services.redis({ appendOnly: false });
    const { server, mdp, redis } = await start(service.url);
    const { names } = iso();
    await expect.poll(() => redis.hget(names.prevClose(DATE), 'AAPL')).toBe('100');
    server.send([bar('AAPL', 0, 110), bar('MSFT', 0, 180)]);
    await expect.poll(() => gappers(redis), { timeout: 10_000 }).toEqual(['AAPL', 'MSFT']);
    expect((await health(mdp.port)).dependencies['state']).toMatchObject({
      ok: true,
      state: 'intact',
    });
    expect(await losses(mdp.port)).toBe(0);

    await service.stop();
    await service.start();

    await expect
      .poll(async () => (await health(mdp.port)).dependencies['state']?.state, { timeout: 15_000 })
      .toBe('lost');
    const degraded = await get(mdp.port, '/health');
    expect(degraded.status).toBe(503);
    const body = (await degraded.json()) as Health;
    expect(body.status).toBe('degraded');
    expect(body.dependencies['state']).toMatchObject({
      ok: false,
      detail: expect.stringMatching(
        /^Redis restarted empty or was flushed at \d{4}-.+Z; /,
      ) as unknown,
    });
    expect(await (await get(mdp.port, '/readyz')).text()).toMatch(/^not ready: .*state lost/);
    expect(await losses(mdp.port)).toBe(1);
    // Restored: the previous closes from the mdp's memory, and the newest date its analyzer applied.
    await expect.poll(() => redis.hget(names.prevClose(DATE), 'MSFT')).toBe('200');
    await expect.poll(() => redis.get(names.latestDate)).toBe(DATE);
    expect((await health(mdp.port)).state).toMatchObject({ losses: { emptied: 1 }, restores: 2 });

    // New bars rank on the gappers board again, and the mdp is ready once degradedMs is over.
    server.send([bar('AAPL', 1, 120), bar('MSFT', 1, 160)]);
    await expect.poll(() => gappers(redis), { timeout: 10_000 }).toEqual(['AAPL', 'MSFT']);
    await expect
      .poll(async () => (await get(mdp.port, '/readyz')).status, { timeout: 10_000 })
      .toBe(200);
    expect((await health(mdp.port)).dependencies['state']).toMatchObject({ ok: true });
    expect(await losses(mdp.port)).toBe(1);
  });

  it('keeps its state through a killed Redis with appendfsync always, and reports no loss', async () => {
    const service = await services.redis({ appendOnly: true, appendFsync: 'always' });
    const { server, mdp, redis } = await start(service.url);
    await expect.poll(() => redis.hget(iso().names.prevClose(DATE), 'AAPL')).toBe('100');
    server.send([bar('AAPL', 0, 110), bar('MSFT', 0, 180)]);
    await expect.poll(() => gappers(redis), { timeout: 10_000 }).toEqual(['AAPL', 'MSFT']);

    await service.kill();
    await service.start();
    expect(await gappers(redis)).toEqual(['AAPL', 'MSFT']);
    // Checked again after the restart (the mdp is ready once its client reconnected), no loss.
    const checks = async () => (await health(mdp.port)).state?.checks ?? 0;
    const before = await checks();
    await expect.poll(checks, { timeout: 15_000 }).toBeGreaterThan(before + 3);
    await expect
      .poll(async () => (await get(mdp.port, '/readyz')).status, { timeout: 10_000 })
      .toBe(200);
    expect((await health(mdp.port)).dependencies['state']).toMatchObject({
      ok: true,
      state: 'intact',
    });
    expect(await losses(mdp.port)).toBe(0);
  });

  it('makes a feed-only server report the loss (it restores nothing)', async () => {
    const service = await services.redis({ appendOnly: false });
    const feed = createFeedServer({
      connection: { redisUrl: service.url, namespace: iso().namespace },
      feed: { insecure: true, limits: parseFeedLimits({}), allowedOrigins: [] },
      top: 20,
      http: { host: '127.0.0.1', port: 0 },
      log: pino({ level: 'silent' }),
      stateGuard: { intervalMs: 100, degradedMs: 500 },
    });
    cleanups.push(() => feed.close());
    await feed.start();
    await expect.poll(async () => (await get(feed.port, '/readyz')).status).toBe(200);
    expect((await health(feed.port)).dependencies['state']).toEqual({
      ok: true,
      state: 'intact',
      sinceMs: expect.any(Number) as unknown,
    });
    await service.stop();
    await service.start();
    await expect
      .poll(async () => (await health(feed.port)).dependencies['state']?.state, { timeout: 15_000 })
      .toBe('lost');
    expect((await health(feed.port)).state?.losses).toEqual({ emptied: 1, rolled_back: 0 });
    await expect
      .poll(async () => (await get(feed.port, '/readyz')).status, { timeout: 10_000 })
      .toBe(200);
  });
});
