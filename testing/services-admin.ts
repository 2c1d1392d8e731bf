import type { Redis } from 'ioredis';
import { basicAuth } from '../services/definitions.ts';

/** Deletes every key matching `pattern`, in SCAN-sized steps; returns how many went. */
export async function deleteKeys(redis: Redis, pattern: string): Promise<number> {
  let deleted = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    if (keys.length > 0) deleted += await redis.unlink(...keys);
    cursor = next;
  } while (cursor !== '0');
  return deleted;
}

/** Calls the RabbitMQ management API; throws with the status on failure (404 on DELETE is fine). */
export async function management(
  baseUrl: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<unknown> {
  const { url, headers } = basicAuth(baseUrl);
  const response = await fetch(`${url}${path}`, {
    method,
    headers: { ...headers, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(10_000),
  });
  if (method === 'DELETE' && response.status === 404) return undefined;
  if (!response.ok)
    throw new Error(
      `RabbitMQ management ${method} ${path}: HTTP ${response.status} ${await response.text()}`,
    );
  const text = await response.text();
  return text === '' ? undefined : (JSON.parse(text) as unknown);
}
