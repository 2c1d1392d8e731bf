import amqp from 'amqplib';
import { Redis } from 'ioredis';

/** What a probe learned: reachable with a version, or not, with why. */
export type ProbeResult = { ok: true; version: string } | { ok: false; error: string };

const TIMEOUT_MS = 1500;

/** PINGs Redis at `url` and reads its version. */
export async function probeRedis(url: string): Promise<ProbeResult> {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  // Errors surface through the awaited calls below; the listener only keeps ioredis quiet.
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    const info = await redis.info('server');
    return { ok: true, version: /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown' };
  } catch (error) {
    return { ok: false, error: (error as Error).message };
  } finally {
    redis.disconnect();
  }
}

/** Opens and closes an AMQP connection at `url` and reads the broker version. */
export async function probeAmqp(url: string): Promise<ProbeResult> {
  try {
    const connection = await amqp.connect(url, { timeout: TIMEOUT_MS });
    const version = String(connection.connection.serverProperties['version'] ?? 'unknown');
    await connection.close();
    return { ok: true, version };
  } catch (error) {
    return { ok: false, error: (error as Error).message };
  }
}

/** GETs `url` and reports whether it answered 2xx in time. */
export async function probeHttp(
  url: string,
  headers: Record<string, string> = {},
): Promise<ProbeResult> {
  try {
    const response = await fetch(url, { headers, signal: AbortSignal.timeout(TIMEOUT_MS) });
    await response.body?.cancel();
    return response.ok
      ? { ok: true, version: 'http' }
      : { ok: false, error: `HTTP ${response.status}` };
  } catch (error) {
    return { ok: false, error: (error as Error).message };
  }
}

/** GETs `url` and returns its JSON body, or `undefined` when it does not answer 2xx with JSON. */
export async function probeJson(url: string): Promise<unknown> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
    return response.ok ? await response.json() : undefined;
  } catch {
    // Unreachable or not JSON: the caller treats both as "no information".
    return undefined;
  }
}

/** Polls `probe` until it succeeds or `timeoutMs` passes; returns the last result. */
export async function waitFor(
  probe: () => Promise<ProbeResult>,
  timeoutMs: number,
): Promise<ProbeResult> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await probe();
    if (result.ok || Date.now() >= deadline) return result;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** True when `version` (e.g. `7.0.15`) is at least `minimum` (e.g. `7.0`). */
export function versionAtLeast(version: string, minimum: string): boolean {
  const have = version.split('.').map(Number);
  const want = minimum.split('.').map(Number);
  for (let i = 0; i < want.length; i++) {
    const h = have[i] ?? 0;
    const w = want[i] ?? 0;
    if (!Number.isFinite(h)) return false;
    if (h !== w) return h > w;
  }
  return true;
}
