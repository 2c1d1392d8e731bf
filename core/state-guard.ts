import { randomBytes } from 'node:crypto';
import type { Meter } from '@opentelemetry/api';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { DependencyCheck } from './health.ts';
import { observableCounter, observeBatch } from './instruments.ts';
import type { Names } from './names.ts';

/**
 * How Redis lost openbell's state:
 * - `emptied`: the marker is gone or carries another epoch (Redis restarted without its data, was
 *   flushed, or the namespace's keys were deleted; another process may have noticed first and
 *   marked the new state);
 * - `rolled_back`: the marker's counter went back (Redis came back from an older snapshot, lost the
 *   last second of an `appendfsync everysec` file, or failed over to a replica that lagged).
 */
export type StateLossKind = 'emptied' | 'rolled_back';

/** The kinds of {@link StateLossKind}, for metrics labels. */
export const STATE_LOSS_KINDS: readonly StateLossKind[] = ['emptied', 'rolled_back'];

/** One state loss as the guard saw it. */
export interface StateLoss {
  kind: StateLossKind;
  /** Epoch ms the guard noticed it. */
  atMs: number;
  /** What it saw, in a few words. */
  detail: string;
}

/**
 * Restores what one part of the process can restore after a loss (reference data, markers).
 * Rejecting makes the guard retry it after `restoreRetryMs`.
 */
export type StateRestore = (loss: StateLoss) => Promise<unknown>;

/** Options of {@link createStateGuard}. */
export interface StateGuardOptions {
  /** The process's own client; the guard checks only while it is `ready`. */
  redis: Redis;
  names: Names;
  log: Logger;
  /** Time between two checks (one small script each, off the hot path). @default 1000 */
  intervalMs?: number;
  /**
   * How long the `state` dependency stays not ok after a loss, at least: and in any case until
   * every restore has succeeded. Long enough for a scrape to see it; the count stays in
   * `openbell_state_losses_total`. @default 30000
   */
  degradedMs?: number;
  /** Delay before a failed restore is tried again. @default 5000 */
  restoreRetryMs?: number;
  /** Clock, epoch ms. @default Date.now */
  now?: () => number;
}

/** What a {@link StateGuard} counted. */
export interface StateGuardStats {
  /** Checks answered. */
  checks: number;
  /** Checks that failed (Redis unreachable: the `redis` dependency says so). */
  checkErrors: number;
  /** Losses seen, by kind. */
  losses: Record<StateLossKind, number>;
  /** Restores that succeeded, and attempts that failed. */
  restores: number;
  restoreFailures: number;
  /** The latest loss. */
  lastLoss?: StateLoss;
}

/**
 * Watches whether Redis still holds the state this process has seen, without a restart: a Redis
 * that restarted empty, was flushed or rolled back. Each process remembers the epoch and counter
 * of the namespace's marker hash ({@link Names.stateMarker}); once a second one script call reads
 * the epoch (setting a new one when it is missing) and increments the counter. A missing or other
 * epoch, or a counter that went back, is a loss: logged once, counted, reported by {@link check}
 * and handed to the restores registered with {@link onLoss}.
 */
export interface StateGuard {
  /** Starts the periodic checks (unref'd); idempotent. */
  start(): void;
  /** Stops them and any restore retry; idempotent. */
  close(): void;
  /**
   * Checks now (one at a time: a check in flight is awaited instead); resolves with the loss it
   * found, if any. The first check adopts the marker as the state this process starts from.
   */
  checkNow(): Promise<StateLoss | undefined>;
  /** Registers a restore run on every loss, named in logs and in `/health`. Returns its removal. */
  onLoss(name: string, restore: StateRestore): () => void;
  /**
   * The `state` dependency: not ok (`lost`, with when and what is being restored) from a loss
   * until every restore has succeeded and `degradedMs` has passed; else `intact` (`unchecked`
   * before the first check). A failing check changes nothing: `redis` reports an unreachable Redis.
   */
  readonly check: DependencyCheck;
  readonly stats: Readonly<StateGuardStats>;
}

// Reads the epoch (marking a new state when there is none) and increments the counter.
// KEYS: 1 the marker hash; ARGV: 1 a new epoch, 2 now (ms). Returns {epoch, seq}.
const CHECK_SCRIPT = `
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then
  redis.call('HSET', KEYS[1], 'epoch', ARGV[1], 'since', ARGV[2])
  epoch = ARGV[1]
end
return {epoch, redis.call('HINCRBY', KEYS[1], 'seq', 1)}`;

type GuardRedis = Redis & {
  openbellStateCheck(key: string, epoch: string, nowMs: string): Promise<[string, number]>;
};

interface Pending {
  failed?: string;
  timer?: NodeJS.Timeout;
}

/** Creates a {@link StateGuard} on a client (connected or not: checks wait for `ready`). */
export function createStateGuard(options: StateGuardOptions): StateGuard {
  const { names, log } = options;
  const redis = options.redis as GuardRedis;
  const intervalMs = options.intervalMs ?? 1000;
  const degradedMs = options.degradedMs ?? 30_000;
  const retryMs = options.restoreRetryMs ?? 5000;
  const now = options.now ?? Date.now;
  if (typeof redis.openbellStateCheck !== 'function')
    redis.defineCommand('openbellStateCheck', { numberOfKeys: 1, lua: CHECK_SCRIPT });

  const stats: StateGuardStats = {
    checks: 0,
    checkErrors: 0,
    losses: { emptied: 0, rolled_back: 0 },
    restores: 0,
    restoreFailures: 0,
  };
  const restores = new Map<string, StateRestore>();
  const pending = new Map<string, Pending>();
  let epoch: string | undefined;
  let seq = 0;
  let generation = 0;
  let inFlight: Promise<StateLoss | undefined> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const clearPending = (): void => {
    for (const p of pending.values()) clearTimeout(p.timer);
    pending.clear();
  };

  const runRestore = (name: string, loss: StateLoss, gen: number): void => {
    const restore = restores.get(name);
    if (restore === undefined || closed || gen !== generation) return;
    const entry: Pending = pending.get(name) ?? {};
    pending.set(name, entry);
    void (async () => {
      try {
        await restore(loss);
        if (gen !== generation) return;
        pending.delete(name);
        stats.restores++;
        log.info({ restore: name, kind: loss.kind }, 'state restored after a loss');
      } catch (error) {
        if (gen !== generation) return;
        stats.restoreFailures++;
        entry.failed = error instanceof Error ? error.message : String(error);
        log.warn(
          { restore: name, err: entry.failed, retryInMs: retryMs },
          'restoring state after a loss failed; retrying',
        );
        if (!closed) entry.timer = setTimeout(() => runRestore(name, loss, gen), retryMs).unref();
      }
    })();
  };

  const lost = (kind: StateLossKind, detail: string): StateLoss => {
    const loss: StateLoss = { kind, atMs: now(), detail };
    stats.losses[kind]++;
    stats.lastLoss = loss;
    generation++;
    clearPending();
    log.error(
      { kind, detail, namespace: names.namespace, restores: [...restores.keys()] },
      'Redis lost openbell state',
    );
    for (const name of restores.keys()) runRestore(name, loss, generation);
    return loss;
  };

  const checkOnce = async (): Promise<StateLoss | undefined> => {
    let answer: [string, number];
    try {
      answer = await redis.openbellStateCheck(
        names.stateMarker,
        randomBytes(8).toString('hex'),
        String(now()),
      );
    } catch (error) {
      stats.checkErrors++;
      log.debug({ err: error instanceof Error ? error.message : error }, 'state check failed');
      return undefined;
    }
    stats.checks++;
    const [seen, count] = [String(answer[0]), Number(answer[1])];
    const before = { epoch, seq };
    epoch = seen;
    seq = count;
    if (before.epoch === undefined) {
      log.debug({ epoch: seen, seq: count }, 'state marker adopted');
      return undefined;
    }
    if (seen !== before.epoch)
      return lost(
        'emptied',
        `the state marker ${names.stateMarker} was gone or replaced (Redis restarted empty, or was flushed)`,
      );
    if (count <= before.seq)
      return lost(
        'rolled_back',
        `the state marker's counter went back from ${before.seq} to ${count} (Redis lost its latest writes)`,
      );
    return undefined;
  };

  const checkNow = (): Promise<StateLoss | undefined> =>
    (inFlight ??= checkOnce().finally(() => (inFlight = undefined)));

  const tick = (): void => {
    if (closed || inFlight !== undefined || redis.status !== 'ready') return;
    void checkNow();
  };

  const check: DependencyCheck = () => {
    const loss = stats.lastLoss;
    if (loss === undefined)
      return { ok: true, state: epoch === undefined ? 'unchecked' : 'intact' };
    if (pending.size === 0 && now() - loss.atMs >= degradedMs) return { ok: true, state: 'intact' };
    const what =
      loss.kind === 'emptied' ? 'Redis restarted empty or was flushed' : 'Redis rolled back';
    const restoring = [...pending].map(([name, p]) =>
      p.failed === undefined ? name : `${name} (failed: ${p.failed})`,
    );
    const done = [...restores.keys()].filter((name) => !pending.has(name));
    const parts = [
      `${what} at ${new Date(loss.atMs).toISOString()}`,
      ...(restoring.length > 0 ? [`restoring ${restoring.join(', ')}`] : []),
      ...(done.length > 0 ? [`restored ${done.join(', ')}`] : []),
    ];
    return { ok: false, state: 'lost', detail: parts.join('; ') };
  };

  return {
    start() {
      if (timer !== undefined || closed) return;
      timer = setInterval(tick, intervalMs).unref();
      tick();
    },
    close() {
      closed = true;
      clearInterval(timer);
      clearPending();
    },
    checkNow,
    onLoss(name, restore) {
      restores.set(name, restore);
      return () => {
        restores.delete(name);
        clearTimeout(pending.get(name)?.timer);
        pending.delete(name);
      };
    },
    check,
    stats,
  };
}

// Sets the newest-date key unless it already holds a newer date (dates compare as text).
const SET_LATEST =
  "local cur = redis.call('GET', KEYS[1]) if not cur or ARGV[1] > cur then redis.call('SET', KEYS[1], ARGV[1]) end return 1";

/**
 * A restore for analyzers: writes back the newest trading date this process applied (the key
 * readers such as `openbell boards` and new feeds start from), unless a newer one is there.
 */
export function restoreLatestDate(
  redis: Redis,
  names: Names,
  latest: () => string | undefined,
): StateRestore {
  return async () => {
    const date = latest();
    if (date !== undefined) await redis.eval(SET_LATEST, 1, names.latestDate, date);
  };
}

/** `openbell_state_losses_total{kind}`: the losses a process's guard saw, read at scrape time. */
export function observeStateGuard(meter: Meter, guard: Pick<StateGuard, 'stats'>): () => void {
  const losses = observableCounter(
    meter,
    'openbell_state_losses',
    'Redis state losses this process noticed (emptied: restarted empty or flushed; rolled_back: lost its latest writes)',
  );
  return observeBatch(meter, [losses], (o) => {
    for (const kind of STATE_LOSS_KINDS) o.observe(losses, guard.stats.losses[kind], { kind });
  });
}
