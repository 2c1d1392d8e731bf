import amqp from 'amqplib';
import { describe, expect, it } from 'vitest';
import { createIsolation, management, useIsolation } from './harness.ts';

describe('test harness', () => {
  const iso = useIsolation();

  it('gives each test a private vhost where queues can be declared and used', async () => {
    const { amqpUrl, names } = iso();
    const connection = await amqp.connect(amqpUrl);
    const channel = await connection.createChannel();
    await channel.assertExchange(names.exchange, 'topic', { durable: true });
    const { queue } = await channel.assertQueue(names.queue('analyzers'));
    await channel.bindQueue(queue, names.exchange, '#');
    channel.publish(names.exchange, 'T', Buffer.from('x'));
    const got = await new Promise<string>((resolve) => {
      void channel.consume(queue, (message) => message && resolve(message.content.toString()), {
        noAck: true,
      });
    });
    expect(got).toBe('x');
    await connection.close();
  });

  it('keeps two isolations apart and removes everything on cleanup', async () => {
    const a = await createIsolation();
    const b = await createIsolation();
    expect(a.namespace).not.toBe(b.namespace);
    await a.redis.set(a.names.prevClose('2026-11-24'), '1');
    await a.redis.hset(a.names.states('2026-11-24'), 'AAPL', '190.5');
    expect(await b.redis.keys(`${b.namespace}:*`)).toEqual([]);

    const connection = await amqp.connect(a.amqpUrl);
    const channel = await connection.createChannel();
    await channel.assertQueue(a.names.queue('analyzers'));
    await connection.close();
    const queues = (await management(a.managementUrl, 'GET', `/api/queues/${a.vhost}`)) as {
      name: string;
    }[];
    expect(queues.map((q) => q.name)).toEqual([a.names.queue('analyzers')]);

    await a.cleanup();
    await b.cleanup();
    const vhosts = (await management(a.managementUrl, 'GET', '/api/vhosts')) as { name: string }[];
    expect(vhosts.map((v) => v.name)).not.toContain(a.vhost);
    const { redis } = iso();
    expect(await redis.keys(`${a.namespace}:*`)).toEqual([]);
  });
});
