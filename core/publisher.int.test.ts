import amqp, { type Channel, type ChannelModel } from 'amqplib';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { bounceVhost, useIsolation } from '../testing/harness.ts';
import { ConfigError, ServiceError } from './errors.ts';
import {
  createBatchPublisher,
  type BatchPublisher,
  type BatchPublisherOptions,
} from './publisher.ts';
import { EVENTS_HEADER } from './topology.ts';

const log = pino({ level: 'silent' });

describe('batch publisher', () => {
  const iso = useIsolation();
  const opened: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const resource of opened.splice(0).reverse()) {
      // A connection the test dropped on purpose may already be closed.
      await resource.close().catch(() => undefined);
    }
  });

  function publisher(options: Partial<BatchPublisherOptions> = {}): BatchPublisher {
    const { amqpUrl, names } = iso();
    const created = createBatchPublisher({ url: amqpUrl, names, log, ...options });
    opened.push(created);
    return created;
  }

  /** A raw channel with a queue bound to every event type. */
  async function tap(): Promise<{ channel: Channel; queue: string }> {
    const { amqpUrl, names } = iso();
    const connection: ChannelModel = await amqp.connect(amqpUrl);
    opened.push(connection);
    const channel = await connection.createChannel();
    await channel.assertExchange(names.exchange, 'topic', { durable: true });
    const { queue } = await channel.assertQueue('', { exclusive: true });
    await channel.bindQueue(queue, names.exchange, '#');
    return { channel, queue };
  }

  async function drain(channel: Channel, queue: string, count: number): Promise<amqp.Message[]> {
    const got: amqp.Message[] = [];
    await vi.waitFor(
      async () => {
        for (let m = await channel.get(queue); m !== false; m = await channel.get(queue)) {
          got.push(m);
          channel.ack(m);
        }
        expect(got.length).toBeGreaterThanOrEqual(count);
      },
      { timeout: 5000, interval: 10 },
    );
    return got;
  }

  it.each([
    ['persistent by default', {}, 2],
    ['transient when asked', { persistent: false }, 1],
  ] as const)(
    'publishes msgpack messages, %s, with the routing key and caller headers',
    async (_how, options, deliveryMode) => {
      const { channel, queue } = await tap();
      const out = publisher(options);
      await out.start();
      expect(out.stats.connected).toBe(true);
      expect(out.tryPublish('T', Buffer.from([0x91, 0x01]), { [EVENTS_HEADER]: 1 })).toBe(true);
      const [message] = await drain(channel, queue, 1);
      expect(message!.fields.routingKey).toBe('T');
      expect(message!.content).toEqual(Buffer.from([0x91, 0x01]));
      expect(message!.properties.contentType).toBe('application/msgpack');
      expect(message!.properties.deliveryMode).toBe(deliveryMode);
      expect(message!.properties.headers).toMatchObject({ [EVENTS_HEADER]: 1 });
      await vi.waitFor(() => expect(out.stats.confirmed).toBe(1));
    },
  );

  it('counts batches that reach no queue as unroutable, with their events', async () => {
    const out = publisher();
    await out.start();
    expect(out.tryPublish('T', Buffer.from([0x91, 0x01]), { [EVENTS_HEADER]: 7 })).toBe(true);
    await vi.waitFor(() =>
      expect(out.stats).toMatchObject({ unroutable: 1, unroutableEvents: 7, confirmed: 1 }),
    );
    await tap();
    expect(out.tryPublish('T', Buffer.from([0x91, 0x01]), { [EVENTS_HEADER]: 7 })).toBe(true);
    await vi.waitFor(() => expect(out.stats.confirmed).toBe(2));
    expect(out.stats.unroutable).toBe(1);
  });

  it('refuses at maxInFlight and whenWritable resolves once confirms arrive', async () => {
    const out = publisher({ maxInFlight: 2 });
    await out.start();
    expect(out.tryPublish('T', Buffer.from('a'), {})).toBe(true);
    expect(out.tryPublish('T', Buffer.from('b'), {})).toBe(true);
    // Confirms arrive asynchronously, so the third call in the same tick must be refused.
    expect(out.tryPublish('T', Buffer.from('c'), {})).toBe(false);
    expect(out.stats).toMatchObject({ published: 2, inFlight: 2, confirmed: 0 });
    await out.whenWritable();
    expect(out.stats.confirmed).toBeGreaterThanOrEqual(1);
    expect(out.tryPublish('T', Buffer.from('c'), {})).toBe(true);
    expect(out.stats.published).toBe(3);
  });

  it('close waits for outstanding confirms', async () => {
    const out = publisher();
    await out.start();
    let sent = 0;
    while (out.tryPublish('T', Buffer.alloc(1024), { [EVENTS_HEADER]: 1 })) sent++;
    expect(sent).toBeGreaterThan(0);
    await out.close();
    expect(out.stats).toMatchObject({ published: sent, confirmed: sent, inFlight: 0, lost: 0 });
    expect(out.stats.connected).toBe(false);
    expect(out.tryPublish('T', Buffer.from('x'), {})).toBe(false);
    await expect(out.whenWritable()).rejects.toThrow(ServiceError);
  });

  it('rejects a pending whenWritable when closed', async () => {
    const out = publisher({ maxInFlight: 1 });
    await out.start();
    expect(out.tryPublish('T', Buffer.from('a'), {})).toBe(true);
    const waiting = out.whenWritable();
    const closing = out.close();
    await expect(waiting).rejects.toThrow(/publisher is closed/);
    await closing;
    await out.close(); // idempotent
  });

  it('reconnects after a broker outage and accounts for every message', async () => {
    const out = publisher({ reconnectInitialMs: 20, reconnectMaxMs: 200 });
    await out.start();
    for (let i = 0; i < 10; i++) out.tryPublish('T', Buffer.from(`before ${i}`), {});
    await bounceVhost(iso());
    await vi.waitFor(() => expect(out.stats.reconnects).toBe(1), { timeout: 5000 });
    expect(out.stats.connected).toBe(true);
    expect(out.tryPublish('T', Buffer.from('after'), {})).toBe(true);
    await vi.waitFor(() => expect(out.stats.inFlight).toBe(0));
    const { published, confirmed, nacked, lost, resent } = out.stats;
    // Batches unconfirmed when the line dropped went out again on the new connection.
    expect(published).toBe(11 + resent);
    expect(confirmed + nacked).toBe(11);
    expect(lost).toBe(0);
    const fresh = await tap();
    expect(out.tryPublish('Q', Buffer.from('again'), {})).toBe(true);
    const [message] = await drain(fresh.channel, fresh.queue, 1);
    expect(message!.content.toString()).toBe('again');
  });

  it('start fails with a ConfigError when the exchange exists with another type', async () => {
    const { amqpUrl, names } = iso();
    const connection = await amqp.connect(amqpUrl);
    opened.push(connection);
    const channel = await connection.createChannel();
    await channel.assertExchange(names.exchange, 'fanout', { durable: true });
    const out = publisher({ reconnectInitialMs: 10 });
    const error: unknown = await out.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain(`exchange "${names.exchange}"`);
    expect(out.stats.connected).toBe(false);
  });
});
