import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  DEFAULTS,
  createBatchPublisher,
  declareAnalyzerQueue,
  encodeBatch,
  type DependencyHealth,
  type MarketEvent,
} from '../../core/index.ts';
import { useIsolation, type Isolation } from '../../testing/harness.ts';
import { proxyServiceUrl } from '../../testing/tcp-proxy.ts';

const BIN = fileURLToPath(new URL('../../bin/openbell.mjs', import.meta.url));
const DATE = '2026-11-24';
const OPEN = Date.parse('2026-11-24T14:30:00Z');
const QUEUE_TTL_MS = 600_000;

interface Health {
  status: string;
  dependencies: Record<string, DependencyHealth>;
}

describe('lba health', () => {
  const iso = useIsolation();
  const cleanups: (() => Promise<unknown> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  /** Starts `openbell lba --http-port 0`; resolves with its HTTP port once it listens. */
  const startLba = async (
    env: Record<string, string>,
    args: string[] = [],
  ): Promise<{ child: ChildProcess; port: number }> => {
    const child = spawn(
      process.execPath,
      [BIN, 'lba', '--http-port', '0', '--queue-ttl-ms', String(QUEUE_TTL_MS), ...args],
      {
        env: { ...process.env, OPENBELL_NAMESPACE: iso().namespace, LOG_LEVEL: 'info', ...env },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    cleanups.push(() => {
      child.kill('SIGKILL');
    });
    let port: number | undefined;
    child.stdout.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) {
        if (!line.includes('"http listening"')) continue;
        port = (JSON.parse(line) as { address: { port: number } }).address.port;
      }
    });
    await vi.waitFor(() => expect(port).toBeDefined(), { timeout: 20_000, interval: 50 });
    return { child, port: port! };
  };
  const readyz = async (port: number) => (await fetch(`http://127.0.0.1:${port}/readyz`)).status;
  const health = async (port: number) =>
    (await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as Health;

  it('answers /readyz 503 while Redis or RabbitMQ is unreachable, naming it, and 200 after', async () => {
    const redis = await proxyServiceUrl(iso().redisUrl);
    const amqp = await proxyServiceUrl(iso().amqpUrl);
    cleanups.push(
      () => redis.proxy.close(),
      () => amqp.proxy.close(),
    );
    const { port } = await startLba({ REDIS_URL: redis.url, AMQP_URL: amqp.url });
    await expect.poll(() => readyz(port), { timeout: 20_000 }).toBe(200);
    expect(await health(port)).toMatchObject({
      status: 'ok',
      dependencies: {
        rabbitmq: { ok: true, state: 'connected' },
        redis: { ok: true, state: 'ready' },
        applies: { ok: true, state: 'ok' },
      },
    });

    redis.proxy.down();
    await expect.poll(() => readyz(port), { timeout: 5000, interval: 50 }).toBe(503);
    const noRedis = await fetch(`http://127.0.0.1:${port}/health`);
    expect(noRedis.status).toBe(503);
    const body = (await noRedis.json()) as Health;
    expect(body.status).toBe('degraded');
    expect(body.dependencies['redis']?.ok).toBe(false);
    expect(body.dependencies['rabbitmq']?.ok).toBe(true);
    expect(await (await fetch(`http://127.0.0.1:${port}/readyz`)).text()).toMatch(
      /^not ready: redis (connecting|reconnecting)\n$/,
    );
    redis.proxy.up();
    await expect.poll(() => readyz(port), { timeout: 15_000 }).toBe(200);

    amqp.proxy.down();
    await expect.poll(() => readyz(port), { timeout: 5000, interval: 50 }).toBe(503);
    expect((await health(port)).dependencies['rabbitmq']).toMatchObject({
      ok: false,
      state: 'disconnected',
    });
    amqp.proxy.up();
    await expect.poll(() => readyz(port), { timeout: 20_000 }).toBe(200);
  });

  it('answers /readyz 503 while every apply fails, and 200 once they succeed again', async () => {
    const { names, redis } = iso();
    // A key of the wrong type: every apply of the date fails (WRONGTYPE), Redis itself is fine.
    await redis.set(names.appliedBatches(DATE), 'not a set');
    const { port } = await startLba({ REDIS_URL: iso().redisUrl, AMQP_URL: iso().amqpUrl }, [
      '--apply-stall-ms',
      '1000',
    ]);
    await expect.poll(() => readyz(port), { timeout: 20_000 }).toBe(200);
    await publish(iso(), [{ ev: 'A', sym: 'AAPL', s: OPEN, e: OPEN + 1000, av: 10, c: 5 }]);
    await expect.poll(() => readyz(port), { timeout: 10_000, interval: 100 }).toBe(503);
    const failing = await health(port);
    expect(failing.dependencies['applies']).toMatchObject({ ok: false, state: 'failing' });
    expect(failing.dependencies['applies']?.detail).toMatch(/no apply succeeded for \d+ s/);
    expect(failing.dependencies['redis']).toMatchObject({ ok: true });
    await redis.del(names.appliedBatches(DATE));
    await expect.poll(() => readyz(port), { timeout: 15_000 }).toBe(200);
  });
});

/** Declares the analyzers' queue as `openbell lba` does, then publishes one batch of `events`. */
async function publish(iso: Isolation, events: MarketEvent[]): Promise<void> {
  await declareAnalyzerQueue(iso.amqpUrl, iso.names, 'analyzers', {
    queueTtlMs: QUEUE_TTL_MS,
    queueMaxLength: DEFAULTS.transport.queueMaxLength,
  });
  const publisher = createBatchPublisher({
    url: iso.amqpUrl,
    names: iso.names,
    log: pino({ level: 'silent' }),
  });
  await publisher.start();
  const body = encodeBatch({ v: 1, id: 'batch-0', receivedAtMs: Date.now(), events });
  while (!publisher.tryPublish('A', body, { 'x-openbell-events': events.length }))
    await publisher.whenWritable();
  await publisher.close();
}
