import type { Redis } from 'ioredis';
import type { DependencyCheck } from './health.ts';

/** Options of {@link createRedisHealth}. */
export interface RedisHealthOptions {
  /** The process's own client: its state is what the process's work depends on. */
  redis: Redis;
  /** Time between two PINGs. @default 1000 */
  intervalMs?: number;
  /**
   * A PING unanswered this long makes Redis unreachable (hung, paused, or a dead link the
   * kernel has not noticed). Long enough to wait behind a full board script. @default 2000
   */
  timeoutMs?: number;
}

/** Redis reachability as a {@link DependencyCheck}, from the client's state and a periodic PING. */
export interface RedisHealth {
  /** Starts the PINGs (unref'd); idempotent. */
  start(): void;
  /** Stops them; idempotent. */
  close(): void;
  /**
   * Not ok while the client is not `ready` (connecting, reconnecting, closed: the state is the
   * client's) or its last PING failed (`ping_failed`) or is unanswered past the timeout
   * (`ping_timeout`). Reads two fields: no request pays for it.
   */
  readonly check: DependencyCheck;
}

type PingResult = ReturnType<DependencyCheck>;

const READY: PingResult = { ok: true, state: 'ready' };

/**
 * Watches a Redis client: one PING at a time, every `intervalMs` while the client is `ready`; a
 * PING still unanswered after `timeoutMs` marks Redis unreachable until one is answered.
 */
export function createRedisHealth(options: RedisHealthOptions): RedisHealth {
  const { redis } = options;
  const intervalMs = options.intervalMs ?? 1000;
  const timeoutMs = options.timeoutMs ?? 2000;
  let last = READY;
  let pinging = false;
  let timer: NodeJS.Timeout | undefined;
  // A reconnected client starts over: a PING that failed on the old connection says nothing.
  const onReady = (): void => {
    last = READY;
  };

  const ping = (): void => {
    if (pinging || redis.status !== 'ready') return;
    pinging = true;
    const late = setTimeout(() => {
      last = { ok: false, state: 'ping_timeout', detail: `no PONG within ${timeoutMs} ms` };
    }, timeoutMs).unref();
    redis
      .ping()
      .then(
        () => {
          last = READY;
        },
        (error: unknown) => {
          last = {
            ok: false,
            state: 'ping_failed',
            detail: error instanceof Error ? error.message : String(error),
          };
        },
      )
      .finally(() => {
        // One PING at a time: against a hung Redis they would otherwise pile up in its queue.
        clearTimeout(late);
        pinging = false;
      });
  };

  return {
    start() {
      if (timer !== undefined) return;
      redis.on('ready', onReady);
      timer = setInterval(ping, intervalMs).unref();
      ping();
    },
    close() {
      clearInterval(timer);
      redis.off('ready', onReady);
    },
    check: () => (redis.status === 'ready' ? last : { ok: false, state: redis.status }),
  };
}
