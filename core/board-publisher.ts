import { context, SpanKind, trace } from '@opentelemetry/api';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { BoardRow, BoardStore } from './board-store.ts';
import { createDurationHistogram, openbellMeter } from './instruments.ts';
import { createLogThrottle } from './log-throttle.ts';
import { BOARD_NAMES, type BoardName, type Names } from './names.ts';
import { openbellTracer, traceHeaders, type LinkRing } from './tracing.ts';

/** A board update as published on the `boardUpdates` pub/sub channel. */
export interface BoardUpdate {
  date: string;
  board: BoardName;
  /** Board version of the date when this was read (increases with every applied change). */
  version: number;
  publishedAtMs: number;
  rows: BoardRow[];
  /** W3C trace context of the publication, when it was traced (the feed continues it). */
  traceparent?: string;
  tracestate?: string;
}

/** Options of {@link createBoardPublisher}. */
export interface BoardPublisherOptions {
  redis: Redis;
  store: BoardStore;
  names: Names;
  log: Logger;
  /** The trading date to publish, or `undefined` before any data. */
  date: () => string | undefined;
  /** Shortest interval between two publications of a board, across every analyzer. @default 250 */
  intervalMs?: number;
  /** Rows per published board. @default 20 */
  top?: number;
  /** Spans of the batches applied since the last round: each publication span links to them. */
  links?: LinkRing;
}

/** Publishes conflated board updates: at most one per board and interval, only boards that changed. */
export interface BoardPublisher {
  start(): void;
  close(): Promise<void>;
  /** Runs one publication round now (what the timer does); resolves with the boards published. */
  tick(): Promise<BoardName[]>;
  readonly stats: {
    ticks: number;
    published: number;
    unchanged: number;
    lockHeldElsewhere: number;
    errors: number;
  };
}

/**
 * Every analyzer runs one; a Redis lock (SET NX PX interval) lets one of them publish per interval,
 * and the last published rows are kept in Redis, so N analyzers publish no more than one would.
 */
export function createBoardPublisher(options: BoardPublisherOptions): BoardPublisher {
  const { redis, store, names, log } = options;
  const failures = createLogThrottle();
  const intervalMs = options.intervalMs ?? 250;
  const top = options.top ?? 20;
  const stats = { ticks: 0, published: 0, unchanged: 0, lockHeldElsewhere: 0, errors: 0 };
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<BoardName[]> | undefined;
  const meter = openbellMeter();
  const roundSeconds = createDurationHistogram(
    meter,
    'openbell_board_publish_duration_seconds',
    'One board publication round',
  );
  const redisSeconds = createDurationHistogram(
    meter,
    'openbell_redis_duration_seconds',
    'Redis call latency, by operation',
  );
  const tracer = openbellTracer();

  const publishRound = async (date: string): Promise<BoardName[]> => {
    // The batches applied since the last round: whichever analyzer publishes carries them.
    const links = options.links?.take() ?? [];
    const locked = await redis.set(
      names.publishLock(date),
      String(process.pid),
      'PX',
      intervalMs,
      'NX',
    );
    if (locked === null) {
      stats.lockHeldElsewhere++;
      return [];
    }
    const version = await store.version(date);
    const last = await redis.hget(names.published(date), 'version');
    if (last !== null && Number(last) === version) {
      stats.unchanged++;
      return [];
    }
    const readStartedAt = performance.now();
    await store.refreshMomentum(date);
    const view = await store.readBoards(date, top);
    redisSeconds.record((performance.now() - readStartedAt) / 1000, { op: 'read_boards' });
    const previous = await redis.hmget(names.published(date), ...BOARD_NAMES);
    const changed = BOARD_NAMES.filter(
      (name, n) => JSON.stringify(view.boards[name]) !== previous[n],
    );
    const publishedAtMs = Date.now();
    // Traced only when it carries sampled batches: a child of the newest, linked to the others.
    const span =
      links.length === 0
        ? undefined
        : tracer.startSpan(
            'openbell.boards publish',
            {
              kind: SpanKind.PRODUCER,
              links,
              attributes: { 'openbell.boards.changed': changed.length, 'openbell.date': date },
            },
            trace.setSpanContext(context.active(), links.at(-1)!.context),
          );
    const traced = span === undefined ? {} : traceHeaders(span.spanContext());
    const multi = redis.multi();
    for (const board of changed) {
      const update: BoardUpdate = {
        date,
        board,
        version,
        publishedAtMs,
        rows: view.boards[board],
        ...traced,
      };
      multi.publish(names.boardUpdates(date), JSON.stringify(update));
      multi.hset(names.published(date), board, JSON.stringify(view.boards[board]));
    }
    multi.hset(names.published(date), 'version', String(version));
    const execStartedAt = performance.now();
    await multi.exec().finally(() => span?.end());
    redisSeconds.record((performance.now() - execStartedAt) / 1000, { op: 'publish' });
    stats.published += changed.length;
    return changed;
  };

  const tick = (): Promise<BoardName[]> => {
    if (running !== undefined) return running;
    const date = options.date();
    if (date === undefined) return Promise.resolve([]);
    stats.ticks++;
    const startedAt = performance.now();
    running = publishRound(date)
      .then((published) => {
        if (published.length > 0) roundSeconds.record((performance.now() - startedAt) / 1000);
        return published;
      })
      .catch((error: unknown) => {
        // Redis down: the next tick tries again; the count says so, and a line every 10 s.
        stats.errors++;
        const suppressed = failures.take('publish');
        if (suppressed !== undefined)
          log.warn({ err: error, date, suppressed }, 'board publication failed');
        return [];
      })
      .finally(() => {
        running = undefined;
      });
    return running;
  };

  return {
    start() {
      timer ??= setInterval(() => void tick(), intervalMs).unref();
    },
    async close() {
      if (timer !== undefined) clearInterval(timer);
      await running;
    },
    tick,
    stats,
  };
}
