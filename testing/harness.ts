import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, beforeEach, inject } from 'vitest';
import { createNames, type Names } from '../core/index.ts';
import { deleteKeys, management } from './services-admin.ts';

/** Resources private to one test: a Redis key namespace and a RabbitMQ vhost of its own. */
export interface Isolation {
  /** Key and name prefix for this test (`t-` and random hex). */
  namespace: string;
  names: Names;
  /** A connected client; closed by {@link Isolation.cleanup}. */
  redis: Redis;
  redisUrl: string;
  /** AMQP URL of this test's own vhost. */
  amqpUrl: string;
  vhost: string;
  managementUrl: string;
  prometheusUrl: string;
  /** Deletes the vhost (and with it every queue and exchange), the namespace's keys, and closes the client. */
  cleanup(): Promise<void>;
}

/** The URLs of the real services, as the global setup found or started them. */
export function serviceUrls(): Required<ReturnType<typeof inject<'services'>>> {
  const urls = inject('services');
  const { redisUrl, amqpUrl, rabbitmqManagementUrl, prometheusUrl } = urls;
  if (
    redisUrl === undefined ||
    amqpUrl === undefined ||
    rabbitmqManagementUrl === undefined ||
    prometheusUrl === undefined
  ) {
    throw new Error('the global setup did not provide every service URL');
  }
  return { redisUrl, amqpUrl, rabbitmqManagementUrl, prometheusUrl };
}

/** Creates a fresh namespace and vhost on the real services. */
export async function createIsolation(): Promise<Isolation> {
  const urls = serviceUrls();
  const namespace = `t-${randomBytes(6).toString('hex')}`;
  const vhost = namespace;
  const amqp = new URL(urls.amqpUrl);
  const user = decodeURIComponent(amqp.username || 'guest');
  await management(urls.rabbitmqManagementUrl, 'PUT', `/api/vhosts/${vhost}`, {});
  await management(
    urls.rabbitmqManagementUrl,
    'PUT',
    `/api/permissions/${vhost}/${encodeURIComponent(user)}`,
    {
      configure: '.*',
      write: '.*',
      read: '.*',
    },
  );
  amqp.pathname = `/${vhost}`;
  const redis = new Redis(urls.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  let cleaned: Promise<void> | undefined;
  return {
    namespace,
    names: createNames({ namespace }),
    redis,
    redisUrl: urls.redisUrl,
    amqpUrl: amqp.toString(),
    vhost,
    managementUrl: urls.rabbitmqManagementUrl,
    prometheusUrl: urls.prometheusUrl,
    cleanup: () =>
      (cleaned ??= (async () => {
        await deleteKeys(redis, `${namespace}:*`);
        redis.disconnect();
        await management(urls.rabbitmqManagementUrl, 'DELETE', `/api/vhosts/${vhost}`);
      })()),
  };
}

/**
 * Deletes and recreates the test's vhost: the broker closes every connection in it, as in an
 * outage, and forgets its exchanges and queues. (Dropping connections one by one through the
 * management API waits up to its statistics interval before they are listed.)
 */
export async function bounceVhost(iso: Isolation): Promise<void> {
  const vhost = encodeURIComponent(iso.vhost);
  const user = encodeURIComponent(decodeURIComponent(new URL(iso.amqpUrl).username || 'guest'));
  await management(iso.managementUrl, 'DELETE', `/api/vhosts/${vhost}`);
  await management(iso.managementUrl, 'PUT', `/api/vhosts/${vhost}`, {});
  await management(iso.managementUrl, 'PUT', `/api/permissions/${vhost}/${user}`, {
    configure: '.*',
    write: '.*',
    read: '.*',
  });
}

/**
 * Registers beforeEach/afterEach hooks that give every test of the file its own isolation;
 * returns a getter for the current one.
 */
export function useIsolation(): () => Isolation {
  let current: Isolation | undefined;
  beforeEach(async () => {
    current = await createIsolation();
  });
  afterEach(async () => {
    await current?.cleanup();
    current = undefined;
  });
  return () => {
    if (current === undefined) throw new Error('useIsolation(): no test is running');
    return current;
  };
}

export { deleteKeys, management };
