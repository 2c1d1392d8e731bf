import amqp, { type ChannelModel } from 'amqplib';
import { afterEach, describe, expect, it } from 'vitest';
import { management, useIsolation } from '../testing/harness.ts';
import { ConfigError } from './errors.ts';
import { assertTopology } from './topology.ts';

interface QueueInfo {
  durable: boolean;
  type: string;
  arguments: Record<string, unknown>;
}

describe('assertTopology', () => {
  const iso = useIsolation();
  let connection: ChannelModel | undefined;
  afterEach(async () => {
    await connection?.close();
    connection = undefined;
  });

  async function channel(): Promise<amqp.Channel> {
    connection ??= await amqp.connect(iso().amqpUrl);
    const created = await connection.createChannel();
    created.on('error', () => undefined); // failed declarations are asserted through rejections
    return created;
  }

  const get = <T>(path: string): Promise<T> =>
    management(iso().managementUrl, 'GET', path) as Promise<T>;
  const queueInfo = (name: string) =>
    get<QueueInfo>(`/api/queues/${iso().vhost}/${encodeURIComponent(name)}`);

  it('declares the exchange, a bounded queue per group and its dead-letter path', async () => {
    const { names, vhost } = iso();
    const topology = await assertTopology(await channel(), names, 'analyzers', {
      queueTtlMs: 5000,
      queueMaxLength: 20_000,
    });
    expect(topology).toEqual({
      exchange: names.exchange,
      queue: names.queue('analyzers'),
      deadLetterExchange: `${names.exchange}.dead`,
      deadLetterQueue: names.queue('analyzers.dead'),
    });
    const queue = await queueInfo(topology.queue);
    expect(queue.durable).toBe(true);
    expect(queue.type).toBe('classic');
    expect(queue.arguments).toEqual({
      'x-message-ttl': 5000,
      'x-max-length': 20_000,
      'x-overflow': 'drop-head',
      'x-dead-letter-exchange': topology.deadLetterExchange,
    });
    const dead = await queueInfo(topology.deadLetterQueue);
    expect(dead.arguments).toEqual({
      'x-max-length': 100_000,
      'x-max-length-bytes': 64 * 1024 * 1024,
      'x-overflow': 'drop-head',
    });
    const exchange = await get<{ type: string; durable: boolean }>(
      `/api/exchanges/${vhost}/${encodeURIComponent(topology.exchange)}`,
    );
    expect(exchange).toMatchObject({ type: 'topic', durable: true });
    const dlx = await get<{ type: string; durable: boolean }>(
      `/api/exchanges/${vhost}/${encodeURIComponent(topology.deadLetterExchange)}`,
    );
    expect(dlx).toMatchObject({ type: 'fanout', durable: true });
    const bindings = await get<{ source: string; routing_key: string }[]>(
      `/api/queues/${vhost}/${encodeURIComponent(topology.deadLetterQueue)}/bindings`,
    );
    expect(bindings.map((b) => b.source)).toContain(topology.deadLetterExchange);
  });

  it('routes only the bound event types to the group queue', async () => {
    const { names } = iso();
    const ch = await channel();
    const { queue } = await assertTopology(ch, names, 'trades', {
      queueTtlMs: 60_000,
      queueMaxLength: 100,
      bindings: ['T', 'A'],
    });
    for (const key of ['T', 'Q', 'A', 'AM']) ch.publish(names.exchange, key, Buffer.from(key));
    // One channel to one queue keeps order: once the marker is in, everything routed before it is.
    ch.publish(names.exchange, 'T', Buffer.from('end'));
    const got: string[] = [];
    while (got.at(-1) !== 'end') {
      const message = await ch.get(queue, { noAck: true });
      if (message === false) await new Promise((resolve) => setTimeout(resolve, 5));
      else got.push(message.content.toString());
    }
    expect(got).toEqual(['T', 'A', 'end']);
  });

  it('succeeds again with the same options from another process', async () => {
    const { names, amqpUrl } = iso();
    const options = { queueTtlMs: 5000, queueMaxLength: 1000, deadLetterMaxLength: 10 };
    const first = await assertTopology(await channel(), names, 'analyzers', options);
    const other = await amqp.connect(amqpUrl);
    try {
      const again = await assertTopology(await other.createChannel(), names, 'analyzers', options);
      expect(again).toEqual(first);
    } finally {
      await other.close();
    }
    expect((await queueInfo(first.deadLetterQueue)).arguments['x-max-length']).toBe(10);
  });

  it('turns different queue arguments into a ConfigError naming the queue', async () => {
    const { names } = iso();
    await assertTopology(await channel(), names, 'analyzers', {
      queueTtlMs: 5000,
      queueMaxLength: 1000,
    });
    const error: unknown = await assertTopology(await channel(), names, 'analyzers', {
      queueTtlMs: 250,
      queueMaxLength: 1000,
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as ConfigError).message;
    expect(message).toContain(`queue "${names.queue('analyzers')}"`);
    expect(message).toContain('different arguments');
    expect(message).toContain('x-message-ttl');
    const quorum: unknown = await assertTopology(await channel(), names, 'analyzers', {
      queueTtlMs: 5000,
      queueMaxLength: 1000,
      quorum: true,
    }).catch((e: unknown) => e);
    expect((quorum as Error).message).toMatch(/different arguments.*x-queue-type/);
  });

  it('declares quorum queues when asked', async () => {
    const { names } = iso();
    const topology = await assertTopology(await channel(), names, 'analyzers', {
      queueTtlMs: 5000,
      queueMaxLength: 1000,
      quorum: true,
    });
    expect((await queueInfo(topology.queue)).type).toBe('quorum');
    expect((await queueInfo(topology.deadLetterQueue)).type).toBe('quorum');
    await assertTopology(await channel(), names, 'analyzers', {
      queueTtlMs: 5000,
      queueMaxLength: 1000,
      quorum: true,
    });
  });
});
