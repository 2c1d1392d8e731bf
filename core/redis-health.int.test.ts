import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { serviceUrls } from '../testing/harness.ts';
import { createTcpProxy } from '../testing/tcp-proxy.ts';
import { createRedisHealth, type RedisHealth } from './redis-health.ts';

describe('createRedisHealth', () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  const target = () => {
    const url = new URL(serviceUrls().redisUrl);
    return { host: url.hostname, port: Number(url.port || 6379) };
  };
  const watch = async (port: number): Promise<RedisHealth> => {
    const redis = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 1 });
    redis.on('error', () => undefined);
    await redis.connect();
    const health = createRedisHealth({ redis, intervalMs: 50, timeoutMs: 300 });
    health.start();
    cleanups.push(
      () => redis.disconnect(),
      () => health.close(),
    );
    return health;
  };

  it('follows the client while Redis is unreachable, and is ready again once it is back', async () => {
    const { host, port } = target();
    const proxy = await createTcpProxy(host, port);
    cleanups.push(() => proxy.close());
    const health = await watch(proxy.port);
    expect(health.check()).toEqual({ ok: true, state: 'ready' });
    proxy.down();
    await expect.poll(() => health.check().ok, { timeout: 5000 }).toBe(false);
    expect(['connecting', 'connect', 'reconnecting']).toContain(health.check().state);
    proxy.up();
    await expect
      .poll(() => health.check(), { timeout: 10_000 })
      .toEqual({ ok: true, state: 'ready' });
  });

  it('marks a Redis that stops answering PINGs, and clears it once one is answered', async () => {
    const { host, port } = target();
    const proxy = await createTcpProxy(host, port);
    cleanups.push(() => proxy.close());
    const health = await watch(proxy.port);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(health.check().ok).toBe(true);
    proxy.hang();
    await expect
      .poll(() => health.check(), { timeout: 5000 })
      .toEqual({
        ok: false,
        state: 'ping_timeout',
        detail: 'no PONG within 300 ms',
      });
    proxy.resume();
    await expect
      .poll(() => health.check(), { timeout: 5000 })
      .toEqual({ ok: true, state: 'ready' });
  });
});
