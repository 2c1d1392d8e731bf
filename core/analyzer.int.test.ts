import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { useIsolation } from '../testing/harness.ts';
import { createTcpProxy, type TcpProxy } from '../testing/tcp-proxy.ts';
import { createAnalyzer, declareAnalyzerQueue, type Analyzer } from './analyzer.ts';
import { encodeBatch } from './batch.ts';
import { createBoardStore } from './board-store.ts';
import { DEFAULTS } from './config.ts';
import { createBatchPublisher } from './publisher.ts';
import { EVENTS_HEADER } from './topology.ts';

const DATE = '2026-11-24';
const OPEN = Date.parse('2026-11-24T14:30:00Z');
const log = pino({ level: 'silent' });

describe('analyzer', () => {
  const iso = useIsolation();
  const cleanup: (() => Promise<unknown> | void)[] = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  it('holds batches unacked while Redis is unreachable and applies them once it is back, without a restart', async () => {
    const { amqpUrl, names, redisUrl, redis } = iso();
    const target = new URL(redisUrl);
    const proxy: TcpProxy = await createTcpProxy(target.hostname, Number(target.port || 6379));
    cleanup.push(() => proxy.close());
    const viaProxy = new Redis(proxy.port, '127.0.0.1', {
      maxRetriesPerRequest: 1,
      retryStrategy: () => 50,
    });
    viaProxy.on('error', () => undefined);
    cleanup.push(() => viaProxy.disconnect());
    const topology = { queueTtlMs: 60_000, queueMaxLength: 1000 };
    await declareAnalyzerQueue(amqpUrl, names, 'analyzers', topology);
    const analyzer: Analyzer = createAnalyzer({
      amqpUrl,
      redis: viaProxy,
      names,
      log,
      topology,
      board: DEFAULTS.board,
      consumer: { retryInitialMs: 20, retryMaxMs: 100 },
    });
    await analyzer.start();
    cleanup.push(() => analyzer.close());
    const publisher = createBatchPublisher({ url: amqpUrl, names, log });
    await publisher.start();
    cleanup.push(() => publisher.close());
    const send = (id: string, s: number): void => {
      const body = encodeBatch({
        v: 1,
        id,
        receivedAtMs: Date.now(),
        events: [{ ev: 'T', sym: 'AMD', t: OPEN + s, p: 100, s }],
      });
      expect(publisher.tryPublish('T', body, { [EVENTS_HEADER]: 1 })).toBe(true);
    };
    const store = createBoardStore({ redis, names, board: DEFAULTS.board });
    const trades = async (): Promise<number> => (await store.applied(DATE)).trades;

    send('before', 1);
    await expect.poll(trades, { timeout: 10_000 }).toBe(1);
    proxy.down();
    send('during', 2);
    await expect.poll(() => analyzer.stats.applyErrors, { timeout: 10_000 }).toBeGreaterThan(0);
    expect(await trades()).toBe(1);
    expect(analyzer.consumer.stats.inFlight).toBe(1);
    proxy.up();
    await expect.poll(trades, { timeout: 10_000 }).toBe(2);
    expect((await store.readBoards(DATE)).boards.trades).toEqual([
      { sym: 'AMD', score: 2, price: null, volume: null },
    ]);
    await expect.poll(() => analyzer.consumer.stats.inFlight).toBe(0);
  });
});
