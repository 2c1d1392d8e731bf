/**
 * Reference data that travels with a recording: its previous closes, gathered for the header when
 * recording, loaded into Redis for the recording's trading date before a replay starts, and again
 * whenever Redis loses its state while the replay runs (core/state-guard.ts).
 */
import { readFile } from 'node:fs/promises';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import {
  DEFAULTS,
  ServiceError,
  createBoardStore,
  createStateGuard,
  fetchPrevCloses,
  observeStateGuard,
  openbellMeter,
  parsePrevCloses,
  redactUrl,
  tradingDateOf,
  type Names,
  type PrevCloses,
  type Recording,
  type RecordingMeta,
  type StateGuard,
  type StateGuardOptions,
} from '../core/index.ts';

/** Options of {@link loadRecordingReference}. */
export interface RecordingReferenceOptions {
  recording: Pick<Recording, 'meta' | 'totals'>;
  /** The Redis the analyzers write the boards to. */
  redisUrl: string;
  names: Names;
  log: Logger;
  /** The state check's tuning. @default its defaults (1 s, 30 s) */
  stateGuard?: Pick<StateGuardOptions, 'intervalMs' | 'degradedMs' | 'restoreRetryMs'>;
}

/** The recording's previous closes in Redis, kept there until {@link RecordingReference.close}. */
export interface RecordingReference {
  /** The trading date they serve (`undefined` when the recording has none). */
  readonly date: string | undefined;
  /** Previous closes stored (0 when the recording has none). */
  readonly loaded: number;
  /** The state check while the replay runs (`undefined` when there is nothing to restore). */
  readonly guard: StateGuard | undefined;
  /** Stops the check and closes the connection. Idempotent. */
  close(): Promise<void>;
}

/** The previous closes of a recording's header and the date they serve, if it has any. */
export function recordingPrevCloses(
  recording: Pick<Recording, 'meta' | 'totals'>,
): PrevCloses | undefined {
  const { meta, totals } = recording;
  if (meta.prevClose === undefined || Object.keys(meta.prevClose).length === 0) return undefined;
  const date =
    typeof meta.date === 'string'
      ? meta.date
      : totals.firstUs === undefined
        ? undefined
        : tradingDateOf(totals.firstUs / 1000);
  if (date === undefined) return undefined;
  return parsePrevCloses(meta.prevClose, date, 'the recording');
}

/**
 * Stores the recording's previous closes for its date (the gappers board needs them) and watches
 * Redis for a state loss, storing them again after one. A recording without previous closes is
 * logged and needs no Redis. Rejects with a {@link ServiceError} naming the URL when Redis does
 * not answer.
 */
export async function loadRecordingReference(
  options: RecordingReferenceOptions,
): Promise<RecordingReference> {
  const { log, names } = options;
  const closes = recordingPrevCloses(options.recording);
  if (closes === undefined || closes.closes.size === 0) {
    log.info('the recording has no previous closes: none loaded (the gappers board stays empty)');
    return { date: undefined, loaded: 0, guard: undefined, close: () => Promise.resolve() };
  }
  const redis = new Redis(options.redisUrl, {
    lazyConnect: true,
    connectTimeout: 5000,
    maxRetriesPerRequest: 2,
  });
  redis.on('error', (error: Error) => log.debug({ err: error.message }, 'redis'));
  try {
    await redis.connect();
  } catch (error) {
    redis.disconnect();
    const reason = error instanceof Error ? error.message : String(error);
    throw new ServiceError(
      'redis',
      `loading the recording's previous closes needs Redis at ${redactUrl(options.redisUrl)} (--redis-url, REDIS_URL): ${reason}; --no-prev-close replays without them`,
    );
  }
  const store = createBoardStore({ redis, names, board: DEFAULTS.board });
  const storeCloses = async (why: string): Promise<number> => {
    const stored = await store.setPrevCloses(closes.date, closes.closes);
    log.info({ date: closes.date, stored, skipped: closes.skipped }, `previous closes ${why}`);
    return stored;
  };
  const guard = createStateGuard({
    redis,
    names,
    log: log.child({ component: 'state' }),
    ...options.stateGuard,
  });
  let loaded: number;
  try {
    // The state this replay starts from, then the closes (a loss in between is seen next check).
    await guard.checkNow();
    loaded = await storeCloses('loaded from the recording');
  } catch (error) {
    guard.close();
    redis.disconnect();
    throw error;
  }
  guard.onLoss('prev-close', () => storeCloses('restored from the recording'));
  const unobserve = observeStateGuard(openbellMeter(), guard);
  guard.start();
  let closed: Promise<void> | undefined;
  return {
    date: closes.date,
    loaded,
    guard,
    close: () =>
      (closed ??= (async () => {
        guard.close();
        unobserve();
        await redis.quit().catch(() => redis.disconnect());
      })()),
  };
}

/** Options of {@link referenceForRecording}. */
export interface RecordingReferenceSourceOptions {
  /** The trading date recorded. */
  date: string;
  /** A file of previous closes (grouped daily bars, or `{"SYM": close}`): used first when given. */
  file?: string | undefined;
  /** The Redis where the mdp stored them for `date`; skipped when it does not answer. */
  redisUrl?: string | undefined;
  names: Names;
  /** Massive's API key for its REST grouped daily bars, tried last. */
  apiKey?: string | undefined;
  /** @default 'https://api.massive.com' */
  restUrl?: string;
  log: Logger;
}

/**
 * The header's reference data for a recording of `date`: its previous closes, from the first
 * source that has them: `file`; the Redis an mdp loaded them into; Massive's REST API (with an
 * API key). None found is logged, and the header then carries the date alone. A file that cannot
 * be read fails (it was asked for); Redis and REST failures are logged and passed over.
 */
export async function referenceForRecording(
  options: RecordingReferenceSourceOptions,
): Promise<RecordingMeta> {
  const { date, log } = options;
  const found = (closes: Map<string, number>, source: string): RecordingMeta => {
    log.info({ date, source, closes: closes.size }, 'previous closes for the recording header');
    return { date, prevClose: Object.fromEntries(closes) };
  };
  if (options.file !== undefined) {
    const json = JSON.parse(await readFile(options.file, 'utf8')) as unknown;
    return found(parsePrevCloses(json, date, options.file).closes, options.file);
  }
  if (options.redisUrl !== undefined) {
    const fromRedis = await prevClosesInRedis(options.redisUrl, options.names, date, log);
    if (fromRedis !== undefined && fromRedis.size > 0)
      return found(fromRedis, redactUrl(options.redisUrl));
  }
  if (options.apiKey !== undefined && options.apiKey !== '') {
    try {
      const rest = await fetchPrevCloses(date, {
        apiKey: options.apiKey,
        ...(options.restUrl === undefined ? {} : { baseUrl: options.restUrl }),
      });
      return found(rest.closes, rest.source);
    } catch (error) {
      log.warn(
        { err: error instanceof Error ? error.message : error, date },
        'REST previous closes',
      );
    }
  }
  log.warn(
    { date },
    'no previous closes for the recording header (no --prev-close-file, none in Redis, none from the REST API): its replays leave gappers empty',
  );
  return { date };
}

/** The previous closes stored for `date` in Redis, or `undefined` when it does not answer. */
async function prevClosesInRedis(
  url: string,
  names: Names,
  date: string,
  log: Logger,
): Promise<Map<string, number> | undefined> {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 2000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    const stored = await redis.hgetall(names.prevClose(date));
    return parsePrevCloses(
      Object.fromEntries(Object.entries(stored).map(([sym, close]) => [sym, Number(close)])),
      date,
      'redis',
    ).closes;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    log.warn(
      { url: redactUrl(url), err: reason },
      'Redis does not answer: no previous closes read',
    );
    return undefined;
  } finally {
    redis.disconnect();
  }
}
