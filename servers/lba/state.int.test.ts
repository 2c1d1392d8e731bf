import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
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
import { seriesValue } from '../../testing/mdp.ts';
import { usePrivateServices } from '../../testing/private-services.ts';

const BIN = fileURLToPath(new URL('../../bin/openbell.mjs', import.meta.url));
const DATE = '2026-11-24';
const OPEN = Date.parse('2026-11-24T14:30:00Z');
const QUEUE_TTL_MS = 600_000;

interface Health {
  status: string;
  dependencies: Record<string, DependencyHealth>;
}

describe('lba and a Redis that loses its state', () => {
  const iso = useIsolation();
  const services = usePrivateServices();
  const cleanups: (() => Promise<unknown> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('detects a restart without an append-only file, counts it, is degraded naming state, and writes the newest date back', async () => {
    const service = await services.redis({ appendOnly: false });
    const redis = new Redis(service.url, { maxRetriesPerRequest: 1 });
    redis.on('error', () => undefined);
    cleanups.push(() => redis.disconnect());
    const child = spawn(
      process.execPath,
      [
        BIN,
        'lba',
        '--http-port',
        '0',
        '--queue-ttl-ms',
        String(QUEUE_TTL_MS),
        '--state-degraded-ms',
        '1500',
      ],
      {
        env: {
          ...process.env,
          OPENBELL_NAMESPACE: iso().namespace,
          REDIS_URL: service.url,
          AMQP_URL: iso().amqpUrl,
          LOG_LEVEL: 'info',
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    cleanups.push(() => {
      child.kill('SIGKILL');
    });
    let port: number | undefined;
    const lines: string[] = [];
    child.stdout.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) {
        lines.push(line);
        if (line.includes('"http listening"'))
          port = (JSON.parse(line) as { address: { port: number } }).address.port;
      }
    });
    await vi.waitFor(() => expect(port).toBeDefined(), { timeout: 20_000, interval: 50 });
    const base = `http://127.0.0.1:${port}`;
    const readyz = async () => (await fetch(`${base}/readyz`)).status;
    const health = async () => (await (await fetch(`${base}/health`)).json()) as Health;
    const losses = async () =>
      seriesValue(
        await (await fetch(`${base}/metrics`)).text(),
        'openbell_state_losses_total{kind="emptied"}',
      );
    await expect.poll(readyz, { timeout: 20_000 }).toBe(200);
    expect((await health()).dependencies['state']).toMatchObject({ ok: true, state: 'intact' });

    await publish(iso(), 'batch-0', [
      { ev: 'A', sym: 'AAPL', s: OPEN, e: OPEN + 1000, av: 10, c: 5 },
    ]);
    await expect.poll(() => redis.get(iso().names.latestDate), { timeout: 10_000 }).toBe(DATE);
    expect(await losses()).toBe(0);

    await service.stop();
    await service.start();
    await expect
      .poll(async () => (await health()).dependencies['state']?.state, { timeout: 15_000 })
      .toBe('lost');
    const body = await health();
    expect(body.status).toBe('degraded');
    expect(body.dependencies['state']?.detail).toMatch(
      /^Redis restarted empty or was flushed at .+Z; /,
    );
    expect(body.dependencies['redis']).toMatchObject({ ok: true });
    expect(await losses()).toBe(1);
    // The key readers start from is written back without any new batch.
    await expect.poll(() => redis.get(iso().names.latestDate)).toBe(DATE);
    expect(lines.filter((line) => line.includes('"Redis lost openbell state"'))).toHaveLength(1);
    await expect.poll(readyz, { timeout: 10_000 }).toBe(200);
    expect(await losses()).toBe(1);
  });
});

/** Declares the analyzers' queue as `openbell lba` does, then publishes one batch of `events`. */
async function publish(iso: Isolation, id: string, events: MarketEvent[]): Promise<void> {
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
  const body = encodeBatch({ v: 1, id, receivedAtMs: Date.now(), events });
  while (!publisher.tryPublish('A', body, { 'x-openbell-events': events.length }))
    await publisher.whenWritable();
  await publisher.close();
}
