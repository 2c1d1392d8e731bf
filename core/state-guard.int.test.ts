import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { useIsolation } from '../testing/harness.ts';
import { usePrivateServices } from '../testing/private-services.ts';
import { createNames, type Names } from './names.ts';
import {
  createStateGuard,
  restoreLatestDate,
  type StateGuard,
  type StateGuardOptions,
  type StateLoss,
} from './state-guard.ts';

const log = pino({ level: 'silent' });

describe('createStateGuard', () => {
  const iso = useIsolation();
  const services = usePrivateServices();
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  const client = async (url: string): Promise<Redis> => {
    const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    redis.on('error', () => undefined);
    await redis.connect();
    cleanups.push(() => redis.disconnect());
    return redis;
  };
  const guard = (
    redis: Redis,
    names: Names,
    options: Partial<StateGuardOptions> = {},
  ): StateGuard => {
    const g = createStateGuard({ redis, names, log, intervalMs: 50, ...options });
    cleanups.push(() => g.close());
    return g;
  };

  it('reports a deleted marker as a loss to every process, restores, and is intact again after degradedMs', async () => {
    const { redis, redisUrl, names } = iso();
    let now = Date.parse('2026-11-24T14:30:00Z');
    const clock = () => now;
    const a = guard(await client(redisUrl), names, { degradedMs: 10_000, now: clock });
    const b = guard(await client(redisUrl), names, { degradedMs: 10_000, now: clock });
    const seen: StateLoss[] = [];
    a.onLoss('reference', async (loss) => {
      seen.push(loss);
      await redis.hset(names.prevClose('2026-11-24'), 'AAPL', '100');
    });
    expect(a.check()).toEqual({ ok: true, state: 'unchecked' });
    expect(await a.checkNow()).toBeUndefined();
    expect(await b.checkNow()).toBeUndefined();
    expect(await a.checkNow()).toBeUndefined();
    expect(a.check()).toEqual({ ok: true, state: 'intact' });
    expect(Number(await redis.hget(names.stateMarker, 'seq'))).toBe(3);

    // A flush of the namespace: the first guard to look marks a new state, the other sees it changed.
    await redis.del(names.stateMarker);
    const loss = await a.checkNow();
    expect(loss).toMatchObject({ kind: 'emptied', atMs: now });
    expect(await b.checkNow()).toMatchObject({ kind: 'emptied' });
    expect(await a.checkNow()).toBeUndefined();
    expect(a.stats.losses).toEqual({ emptied: 1, rolled_back: 0 });
    expect(b.stats.losses).toEqual({ emptied: 1, rolled_back: 0 });
    await expect.poll(() => a.stats.restores).toBe(1);
    expect(seen).toEqual([loss]);
    expect(await redis.hget(names.prevClose('2026-11-24'), 'AAPL')).toBe('100');
    expect(a.check()).toEqual({
      ok: false,
      state: 'lost',
      detail:
        'Redis restarted empty or was flushed at 2026-11-24T14:30:00.000Z; restored reference',
    });
    now += 9_999;
    expect(a.check().ok).toBe(false);
    now += 1;
    expect(a.check()).toEqual({ ok: true, state: 'intact' });
    expect(b.check()).toEqual({ ok: true, state: 'intact' });
  });

  it('reports a counter that went back as a roll-back', async () => {
    const { redis, redisUrl, names } = iso();
    const g = guard(await client(redisUrl), names);
    for (let n = 0; n < 3; n++) expect(await g.checkNow()).toBeUndefined();
    await redis.hset(names.stateMarker, 'seq', '1');
    expect(await g.checkNow()).toMatchObject({
      kind: 'rolled_back',
      detail: "the state marker's counter went back from 3 to 2 (Redis lost its latest writes)",
    });
    expect(g.stats.losses).toEqual({ emptied: 0, rolled_back: 1 });
    expect(g.check()).toMatchObject({ ok: false, state: 'lost' });
  });

  it('retries a failing restore and stays not ok until it succeeds, past degradedMs', async () => {
    const { redis, redisUrl, names } = iso();
    const g = guard(await client(redisUrl), names, { degradedMs: 0, restoreRetryMs: 50 });
    let attempts = 0;
    g.onLoss('prev-close', () => {
      attempts++;
      return attempts < 3 ? Promise.reject(new Error('massive unreachable')) : Promise.resolve();
    });
    await g.checkNow();
    await redis.del(names.stateMarker);
    await g.checkNow();
    await expect.poll(() => g.stats.restoreFailures).toBe(1);
    expect(g.check()).toMatchObject({
      ok: false,
      detail: expect.stringMatching(
        /^Redis restarted empty or was flushed at .+Z; restoring prev-close \(failed: massive unreachable\)$/,
      ) as unknown,
    });
    await expect.poll(() => g.stats.restores).toBe(1);
    expect(attempts).toBe(3);
    expect(g.check()).toEqual({ ok: true, state: 'intact' });
  });

  it('writes back the newest applied date unless a newer one is there', async () => {
    const { redis, names } = iso();
    const restore = restoreLatestDate(redis, names, () => '2026-11-24');
    const loss: StateLoss = { kind: 'emptied', atMs: 0, detail: '' };
    await restore(loss);
    expect(await redis.get(names.latestDate)).toBe('2026-11-24');
    await redis.set(names.latestDate, '2026-11-25');
    await restore(loss);
    expect(await redis.get(names.latestDate)).toBe('2026-11-25');
    await restoreLatestDate(redis, names, () => undefined)(loss);
    expect(await redis.get(names.latestDate)).toBe('2026-11-25');
  });

  it('detects a private Redis without an append-only file that restarted empty, on its own', async () => {
    const service = await services.redis({ appendOnly: false });
    const names = createNames({ namespace: 'guard' });
    const g = guard(await client(service.url), names);
    g.start();
    await expect.poll(() => g.stats.checks).toBeGreaterThan(1);
    await service.stop();
    await service.start();
    await expect.poll(() => g.stats.losses.emptied, { timeout: 15_000 }).toBe(1);
    expect(g.check()).toMatchObject({ ok: false, state: 'lost' });
    const checks = g.stats.checks;
    await expect.poll(() => g.stats.checks).toBeGreaterThan(checks + 2);
    expect(g.stats.losses).toEqual({ emptied: 1, rolled_back: 0 });
  });

  it('detects a roll-back to an older snapshot', async () => {
    const service = await services.redis({ appendOnly: false });
    const names = createNames({ namespace: 'guard' });
    const redis = await client(service.url);
    const g = guard(redis, names);
    g.start();
    await expect.poll(() => g.stats.checks).toBeGreaterThan(1);
    await redis.save();
    const checks = g.stats.checks;
    await expect.poll(() => g.stats.checks).toBeGreaterThan(checks + 1);
    // Killed: it comes back from its last snapshot (dump.rdb), older than the counter.
    await service.kill();
    await service.start();
    await expect.poll(() => g.stats.losses.rolled_back, { timeout: 15_000 }).toBe(1);
    expect(g.stats.losses.emptied).toBe(0);
  });

  it.each(['stop', 'kill'] as const)(
    'sees no loss when a Redis with appendfsync always restarts (%s)',
    async (how) => {
      const service = await services.redis({ appendOnly: true, appendFsync: 'always' });
      const names = createNames({ namespace: 'guard' });
      const g = guard(await client(service.url), names);
      g.start();
      await expect.poll(() => g.stats.checks).toBeGreaterThan(2);
      await service[how]();
      await service.start();
      const checks = g.stats.checks;
      await expect.poll(() => g.stats.checks, { timeout: 15_000 }).toBeGreaterThan(checks + 3);
      expect(g.stats.losses).toEqual({ emptied: 0, rolled_back: 0 });
      expect(g.check()).toEqual({ ok: true, state: 'intact' });
    },
  );
});
