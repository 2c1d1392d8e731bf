import amqp, { type Channel } from 'amqplib';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { bounceVhost, useIsolation } from '../testing/harness.ts';
import { decodeBatch, encodeBatch, type EventBatch } from './batch.ts';
import {
  createBatchConsumer,
  type BatchConsumer,
  type BatchConsumerOptions,
  type DeliveryInfo,
} from './consumer.ts';
import { ConfigError } from './errors.ts';
import type { MarketEvent } from './events.ts';
import { createBatchPublisher } from './publisher.ts';
import { assertTopology, EVENTS_HEADER, type TopologyOptions } from './topology.ts';

const log = pino({ level: 'silent' });
const TOPOLOGY: TopologyOptions = { queueTtlMs: 60_000, queueMaxLength: 1000 };
const FAST = { retryInitialMs: 5, retryMaxMs: 20, reconnectInitialMs: 20, reconnectMaxMs: 200 };

function trades(count: number): MarketEvent[] {
  return Array.from({ length: count }, (_, n) => ({
    ev: 'T',
    sym: 'AAPL',
    p: 190 + n / 100,
    s: 100,
    t: 1_700_000_000_000 + n,
    q: n,
  }));
}

describe('batch consumer', () => {
  const iso = useIsolation();
  const opened: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const resource of opened.splice(0).reverse()) {
      // A connection the test dropped on purpose may already be closed.
      await resource.close().catch(() => undefined);
    }
  });

  type Handle = BatchConsumerOptions['handle'];
  /** A handler that runs `fn` and resolves. */
  const sync =
    (fn: (body: Buffer, info: DeliveryInfo) => void = () => undefined): Handle =>
    (body, info) => {
      fn(body, info);
      return Promise.resolve();
    };
  function consumer(handle: Handle, options: Partial<BatchConsumerOptions> = {}): BatchConsumer {
    const { amqpUrl, names } = iso();
    const created = createBatchConsumer({
      url: amqpUrl,
      names,
      group: 'analyzers',
      topology: TOPOLOGY,
      log,
      handle,
      ...FAST,
      ...options,
    });
    opened.push(created);
    return created;
  }

  /** A raw channel on which the test declares the topology and publishes as the listener would. */
  async function rawChannel(): Promise<Channel> {
    const connection = await amqp.connect(iso().amqpUrl);
    opened.push(connection);
    return connection.createChannel();
  }

  function publish(channel: Channel, id: string, events: number): void {
    const body = encodeBatch({ v: 1, id, receivedAtMs: 1, events: trades(events) });
    channel.publish(iso().names.exchange, 'T', body, { headers: { [EVENTS_HEADER]: events } });
  }

  async function depth(channel: Channel, queue: string): Promise<number> {
    return (await channel.checkQueue(queue)).messageCount;
  }

  it('round-trips msgpack batches from the publisher with the events header', async () => {
    const got: { batch: EventBatch | undefined; info: DeliveryInfo }[] = [];
    const input = consumer(
      sync((body, info) => got.push({ batch: decodeBatch(body).batch, info })),
    );
    await input.start();
    const output = createBatchPublisher({ url: iso().amqpUrl, names: iso().names, log });
    opened.push(output);
    await output.start();
    const batches = [0, 1, 2].map((n) => ({
      v: 1 as const,
      id: `b${n}`,
      receivedAtMs: n,
      events: trades(50),
    }));
    for (const batch of batches) {
      expect(output.tryPublish('T', encodeBatch(batch), { [EVENTS_HEADER]: 50 })).toBe(true);
    }
    await vi.waitFor(() => expect(input.stats.acked).toBe(3));
    expect(got.map((g) => g.batch)).toEqual(batches);
    expect(got[0]!.info).toMatchObject({
      redelivered: false,
      routingKey: 'T',
      headers: { [EVENTS_HEADER]: 50 },
    });
    expect(input.stats).toMatchObject({ consumed: 3, acked: 3, inFlight: 0, connected: true });
  });

  it('runs at most `concurrency` handler calls at a time', async () => {
    let running = 0;
    let most = 0;
    const input = consumer(
      async () => {
        most = Math.max(most, ++running);
        await sleep(5);
        running--;
      },
      { concurrency: 3, prefetch: 20 },
    );
    await input.start();
    const channel = await rawChannel();
    for (let n = 0; n < 30; n++) publish(channel, `b${n}`, 1);
    await vi.waitFor(() => expect(input.stats.acked).toBe(30));
    expect(most).toBe(3);
  });

  it('reports batches expired by the queue TTL as expired, counted in events', async () => {
    const { names } = iso();
    const topology = { queueTtlMs: 20, queueMaxLength: 1000 };
    const channel = await rawChannel();
    const { deadLetterQueue } = await assertTopology(channel, names, 'analyzers', topology);
    for (const [n, events] of [50, 20, 30].entries()) publish(channel, `b${n}`, events);
    await vi.waitFor(async () => expect(await depth(channel, deadLetterQueue)).toBe(3));
    const reports: [string, number, number][] = [];
    const handle = vi.fn(sync());
    const input = consumer(handle, {
      topology,
      onDeadLetter: (reason, events) => void reports.push([reason, events, 1]),
    });
    await input.start();
    await vi.waitFor(() => expect(reports).toHaveLength(3));
    expect(reports).toEqual([
      ['expired', 50, 1],
      ['expired', 20, 1],
      ['expired', 30, 1],
    ]);
    expect(input.stats.deadLettered).toEqual({ expired: 100 });
    expect(handle).not.toHaveBeenCalled();
  });

  it('drops the head at max length and reports the dropped batches as maxlen', async () => {
    const { names } = iso();
    const topology = { queueTtlMs: 60_000, queueMaxLength: 2 };
    const channel = await rawChannel();
    const { queue } = await assertTopology(channel, names, 'analyzers', topology);
    for (let n = 0; n < 5; n++) publish(channel, `b${n}`, n + 1);
    await vi.waitFor(async () => expect(await depth(channel, queue)).toBe(2));
    const ids: string[] = [];
    const input = consumer(
      sync((body) => ids.push(decodeBatch(body).batch!.id)),
      {
        topology,
      },
    );
    await input.start();
    await vi.waitFor(() => expect(input.stats.deadLettered).toEqual({ maxlen: 1 + 2 + 3 }));
    await vi.waitFor(() => expect(ids).toEqual(['b3', 'b4']));
  });

  it('counts only dead letters from its own group queue', async () => {
    const { names } = iso();
    const channel = await rawChannel();
    const short = { queueTtlMs: 20, queueMaxLength: 1000 };
    await assertTopology(channel, names, 'analyzers', short);
    await assertTopology(channel, names, 'recorder', TOPOLOGY);
    publish(channel, 'b0', 7);
    // The analyzers' copy expires; the dead-letter exchange is a fanout shared by the groups, so
    // the dead letter reaches both dead-letter queues.
    await vi.waitFor(async () => {
      expect(await depth(channel, names.queue('analyzers.dead'))).toBe(1);
      expect(await depth(channel, names.queue('recorder.dead'))).toBe(1);
    });
    const other = consumer(sync(), { group: 'recorder' });
    const input = consumer(sync(), { topology: short });
    await Promise.all([other.start(), input.start()]);
    await vi.waitFor(() => expect(input.stats.deadLettered).toEqual({ expired: 7 }));
    await vi.waitFor(async () => {
      expect(await depth(channel, names.queue('recorder.dead'))).toBe(0);
    });
    expect(other.stats.deadLettered).toEqual({});
  });

  it('retries a throwing handler and acks once it succeeds', async () => {
    let calls = 0;
    const input = consumer(
      sync(() => {
        if (++calls < 3) throw new Error('redis down');
      }),
    );
    await input.start();
    const channel = await rawChannel();
    publish(channel, 'b0', 1);
    await vi.waitFor(() => expect(input.stats.acked).toBe(1));
    expect(calls).toBe(3);
    expect(input.stats).toMatchObject({ consumed: 1, retries: 2, inFlight: 0 });
    await input.close();
    expect(await depth(channel, iso().names.queue('analyzers'))).toBe(0);
  });

  it('close finishes an in-flight handler call and acks it', async () => {
    const gate = Promise.withResolvers<void>();
    const started = Promise.withResolvers<void>();
    const input = consumer(async () => {
      started.resolve();
      await gate.promise;
    });
    await input.start();
    const channel = await rawChannel();
    publish(channel, 'b0', 1);
    await started.promise;
    let closed = false;
    const closing = input.close().then(() => (closed = true));
    await sleep(50);
    expect(closed).toBe(false);
    gate.resolve();
    await closing;
    expect(input.stats).toMatchObject({ acked: 1, inFlight: 0, connected: false });
    expect(await depth(channel, iso().names.queue('analyzers'))).toBe(0);
  });

  it('leaves a message it is still retrying at close for another consumer', async () => {
    const failing = consumer(() => Promise.reject(new Error('redis down')));
    await failing.start();
    const channel = await rawChannel();
    publish(channel, 'b0', 1);
    await vi.waitFor(() => expect(failing.stats.retries).toBeGreaterThanOrEqual(1));
    await failing.close();
    expect(failing.stats.acked).toBe(0);
    const infos: DeliveryInfo[] = [];
    const second = consumer(sync((_body, info) => infos.push(info)));
    await second.start();
    await vi.waitFor(() => expect(second.stats.acked).toBe(1));
    expect(infos[0]!.redelivered).toBe(true);
    expect(second.stats.redelivered).toBe(1);
  });

  it('reconnects after a broker outage, re-declares its queues and consumes again', async () => {
    const ids: string[] = [];
    const input = consumer(sync((body) => ids.push(decodeBatch(body).batch!.id)));
    await input.start();
    await bounceVhost(iso());
    await vi.waitFor(() => expect(input.stats.reconnects).toBe(1), { timeout: 5000 });
    expect(input.stats.connected).toBe(true);
    const channel = await rawChannel();
    publish(channel, 'after', 1);
    await vi.waitFor(() => expect(ids).toEqual(['after']));
  });

  it('start fails with a ConfigError when the group queue has other arguments', async () => {
    const { names } = iso();
    await assertTopology(await rawChannel(), names, 'analyzers', TOPOLOGY);
    const input = consumer(sync(), {
      topology: { ...TOPOLOGY, queueMaxLength: TOPOLOGY.queueMaxLength + 1 },
    });
    const error: unknown = await input.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain(names.queue('analyzers'));
    await input.close();
  });
});
