import amqp from 'amqplib';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { usePrivateServices } from '../testing/private-services.ts';
import { createNames } from './names.ts';
import { createBatchPublisher, type BatchPublisher } from './publisher.ts';
import { EVENTS_HEADER } from './topology.ts';

const log = pino({ level: process.env['TEST_LOG'] ?? 'silent' });
const names = createNames({ namespace: 'fault' });

/** Every message in `queue`, consumed: their bodies (the batch numbers). */
async function readAll(url: string, queue: string): Promise<string[]> {
  const connection = await amqp.connect(url);
  try {
    const channel = await connection.createChannel();
    const { messageCount } = await channel.checkQueue(queue);
    const bodies: string[] = [];
    const all = Promise.withResolvers<void>();
    if (messageCount === 0) all.resolve();
    await channel.consume(
      queue,
      (m) => {
        if (m !== null) bodies.push(m.content.toString());
        if (bodies.length === messageCount) all.resolve();
      },
      { noAck: true },
    );
    await all.promise;
    return bodies;
  } finally {
    await connection.close();
  }
}

async function declareQueue(url: string, queue: string): Promise<void> {
  const connection = await amqp.connect(url);
  try {
    const channel = await connection.createChannel();
    await channel.assertExchange(names.exchange, 'topic', { durable: true });
    await channel.assertQueue(queue, { durable: true });
    await channel.bindQueue(queue, names.exchange, '#');
  } finally {
    await connection.close();
  }
}

describe('batch publisher through a broker restart', () => {
  const services = usePrivateServices();
  const opened: BatchPublisher[] = [];
  afterEach(async () => {
    for (const publisher of opened.splice(0)) await publisher.close();
  });

  /**
   * Publishes `total` numbered batches as fast as confirms allow while `fault` runs once a third
   * of them is out; returns the publisher once every batch is confirmed.
   */
  async function publishThrough(
    url: string,
    total: number,
    fault: () => Promise<void>,
  ): Promise<BatchPublisher> {
    const publisher = createBatchPublisher({
      url,
      names,
      log,
      maxInFlight: 64,
      reconnectInitialMs: 50,
      reconnectMaxMs: 500,
    });
    opened.push(publisher);
    await publisher.start();
    let faulted: Promise<void> | undefined;
    for (let n = 0; n < total; n++) {
      while (!publisher.tryPublish('T', Buffer.from(`b${n}`), { [EVENTS_HEADER]: 10 })) {
        await publisher.whenWritable();
      }
      if (n === Math.floor(total / 3)) faulted = fault();
    }
    await faulted;
    await vi.waitFor(() => expect(publisher.stats.inFlight).toBe(0), { timeout: 30_000 });
    return publisher;
  }

  it.each([
    ['kill', (broker: { kill(): Promise<void> }) => broker.kill()],
    ['graceful stop', (broker: { stop(): Promise<void> }) => broker.stop()],
  ])(
    'loses no batch through a broker %s: unconfirmed batches are published again',
    async (_kind, down) => {
      const broker = await services.rabbitmq();
      const queue = `fault-${_kind.replace(' ', '-')}`;
      await declareQueue(broker.url, queue);
      const total = 3000;
      const publisher = await publishThrough(broker.url, total, async () => {
        await down(broker);
        await broker.start();
      });
      const bodies = await readAll(broker.url, queue);
      const distinct = new Set(bodies);
      // Every batch arrived; a batch the broker took but could not confirm may come twice.
      expect(distinct.size).toBe(total);
      expect(publisher.stats).toMatchObject({ lost: 0, lostEvents: 0, nacked: 0, inFlight: 0 });
      expect(publisher.stats.reconnects).toBeGreaterThanOrEqual(1);
      expect(publisher.stats.confirmed).toBe(publisher.stats.published - publisher.stats.resent);
      expect(bodies.length - total).toBeLessThanOrEqual(publisher.stats.resent);
    },
    120_000,
  );

  it('counts what is unconfirmed at close, with the broker gone, as lost events', async () => {
    const broker = await services.rabbitmq();
    await declareQueue(broker.url, 'fault-close');
    const publisher = createBatchPublisher({
      url: broker.url,
      names,
      log,
      maxInFlight: 8,
      closeTimeoutMs: 300,
    });
    opened.push(publisher);
    await publisher.start();
    broker.pause();
    try {
      let sent = 0;
      while (publisher.tryPublish('T', Buffer.from(`c${sent}`), { [EVENTS_HEADER]: 7 })) sent++;
      expect(sent).toBe(8);
      await publisher.close();
      expect(publisher.stats).toMatchObject({ lost: 8, lostEvents: 56, inFlight: 0 });
    } finally {
      broker.resume();
    }
  }, 60_000);
});
