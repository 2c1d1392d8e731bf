import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import amqp from 'amqplib';
import * as hdr from 'hdr-histogram-js';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { decodeBatch } from './batch.ts';
import { createBoardPublisher, type BoardPublisher } from './board-publisher.ts';
import {
  createBoardStore,
  type BoardStore,
  type DateLedger,
  type LedgerBatch,
} from './board-store.ts';
import { DEFAULTS, type BoardOptions } from './config.ts';
import {
  createBatchConsumer,
  type BatchConsumer,
  type BatchConsumerOptions,
  type DeliveryInfo,
} from './consumer.ts';
import { checkBoardEvent, createDecodeCounts, type DecodeCounts } from './decode.ts';
import { createGroupApplier } from './group-applier.ts';
import { createLogThrottle } from './log-throttle.ts';
import { createDurationHistogram, openbellMeter } from './instruments.ts';
import type { Names } from './names.ts';
import { observeAnalyzer } from './pipeline-metrics.ts';
import { EVENTS_HEADER, assertTopology, type TopologyOptions } from './topology.ts';
import { contextFromHeaders, createLinkRing, openbellTracer } from './tracing.ts';

/** Routing keys the analyzers consume: the event types the boards are computed from. */
export const ANALYZER_BINDINGS: readonly string[] = ['A', 'AM', 'T'];

/**
 * Declares the analyzers' queue of `group` (as `openbell lba` does) with a short-lived
 * connection. The listener calls it at start: a batch published before any queue exists would
 * be dropped by the broker without a trace.
 */
export async function declareAnalyzerQueue(
  amqpUrl: string,
  names: Names,
  group: string,
  topology: Omit<TopologyOptions, 'bindings'>,
): Promise<void> {
  const connection = await amqp.connect(amqpUrl);
  try {
    const channel = await connection.createChannel();
    await assertTopology(channel, names, group, { ...topology, bindings: ANALYZER_BINDINGS });
  } finally {
    await connection.close().catch(() => undefined);
  }
}

/** Options of {@link createAnalyzer}. */
export interface AnalyzerOptions {
  amqpUrl: string;
  /** A connected ioredis client the analyzer uses (and does not close). */
  redis: Redis;
  names: Names;
  log: Logger;
  /** Consumer group; analyzers of one group share one queue. @default 'analyzers' */
  group?: string;
  topology: Omit<TopologyOptions, 'bindings'>;
  board: BoardOptions;
  /** @default DEFAULTS.transport.prefetch */
  prefetch?: number;
  /**
   * Batches held at once; those that arrive together are applied as one group. Half the
   * prefetch by default, so the next group's batches are already here when one is applied.
   * @default prefetch / 2
   */
  concurrency?: number;
  /**
   * A group is applied as soon as it holds this many events. Under load, a group of 16,000 bench
   * events costs Redis less per event than one of 8,000 (`npm run bench -- --only pipeline`:
   * redis.apply against redis.apply.groups-8000). @default 16000
   */
  groupMaxEvents?: number;
  /**
   * Fault injection for the lab: every batch waits this long, one after another, before it is
   * applied, the way an analyzer doing one Redis round trip per event falls behind. @default 0
   */
  injectDelayMs?: number;
  /** Consumer tuning passed through (retry and reconnect delays, close timeout). */
  consumer?: Pick<
    BatchConsumerOptions,
    'retryInitialMs' | 'retryMaxMs' | 'reconnectInitialMs' | 'reconnectMaxMs' | 'closeTimeoutMs'
  >;
}

/** Counters of an {@link Analyzer}. */
export interface AnalyzerStats {
  /** Script calls: each applies the batches that arrived together. */
  groups: number;
  batches: number;
  events: number;
  aggregates: number;
  trades: number;
  /** Batch parts skipped as already applied (redeliveries). */
  duplicates: number;
  /** Events that cannot move a board (incomplete bars and trades, other types). */
  ignored: number;
  /** Batches or events dropped as malformed. */
  dropped: number;
  /** Failed applies (Redis unavailable), retried. */
  applyErrors: number;
  /** Events this analyzer accounted as applied in the ledger (each batch once across analyzers). */
  appliedEvents: number;
  /** Events of batches found applied before (redeliveries and resent copies): not applied again. */
  duplicateEvents: number;
  /**
   * Events of batches whose envelope does not decode (no id, so not in Redis's ledger): counted
   * here, by this process, from their `x-openbell-events` header.
   */
  undecodableEvents: number;
  /** Events of dead-lettered batches this analyzer accounted in the ledger as dropped by the broker. */
  deadEvents: number;
}

/** The ledger of the newest trading date an analyzer applied, as last read from Redis. */
export interface AnalyzerLedger extends DateLedger {
  date: string;
  /** When it was read, epoch ms. */
  readAtMs: number;
}

/** A stateless analyzer: consumes event batches, applies them to the boards in Redis, publishes updates. */
export interface Analyzer {
  start(): Promise<void>;
  close(): Promise<void>;
  readonly stats: Readonly<AnalyzerStats>;
  readonly decodeCounts: Readonly<DecodeCounts>;
  readonly consumer: BatchConsumer;
  readonly store: BoardStore;
  readonly publisher: BoardPublisher;
  /** End-to-end lag (listener receive → board applied) percentiles in ms, since start. */
  lagMs(): { p50: number; p99: number; max: number; count: number };
  /** The newest trading date this analyzer applied. */
  readonly latestDate: string | undefined;
  /** The ledger of {@link Analyzer.latestDate} as last read (every second), if read yet. */
  readonly ledger: AnalyzerLedger | undefined;
  /**
   * Counters, consumer and board-publisher state, lag percentiles, and the lag histogram itself
   * (HdrHistogram, compressed base64) so a reader can merge instances and diff two readings.
   */
  health(): Record<string, unknown>;
}

/** A batch's `x-openbell-events` header, 0 when missing or malformed. */
function eventsOf(headers: Record<string, unknown>): number {
  const events = headers[EVENTS_HEADER];
  return typeof events === 'number' && Number.isSafeInteger(events) && events > 0 ? events : 0;
}

/** How often an analyzer reads its latest date's ledger for `/health` and the metrics. */
export const LEDGER_POLL_MS = 1000;

/** Creates an analyzer; nothing connects before `start()`. */
export function createAnalyzer(options: AnalyzerOptions): Analyzer {
  const { names, log, redis } = options;
  const store = createBoardStore({ redis, names, board: options.board });
  const stats: AnalyzerStats = {
    groups: 0,
    batches: 0,
    events: 0,
    aggregates: 0,
    trades: 0,
    duplicates: 0,
    ignored: 0,
    dropped: 0,
    applyErrors: 0,
    appliedEvents: 0,
    duplicateEvents: 0,
    undecodableEvents: 0,
    deadEvents: 0,
  };
  const decodeCounts = createDecodeCounts();
  const deadLog = createLogThrottle();
  const meter = openbellMeter();
  const lagSeconds = createDurationHistogram(
    meter,
    'openbell_lag_seconds',
    'End-to-end lag: listener receive to board applied in Redis',
  );
  const redisSeconds = createDurationHistogram(
    meter,
    'openbell_redis_duration_seconds',
    'Redis call latency, by operation',
  );
  const tracer = openbellTracer();
  const applied = createLinkRing();
  const lag = hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: 3_600_000,
    numberOfSignificantValueDigits: 3,
  });
  let latestDate: string | undefined;

  const applier = createGroupApplier({
    store: {
      applyBatches: async (batches) => {
        const startedAt = performance.now();
        try {
          return await store.applyBatches(batches);
        } finally {
          redisSeconds.record((performance.now() - startedAt) / 1000, { op: 'apply' });
        }
      },
    },
    ...(options.groupMaxEvents === undefined ? {} : { groupMaxEvents: options.groupMaxEvents }),
    onApplied(result, batches) {
      const now = performance.timeOrigin + performance.now();
      stats.groups++;
      stats.batches += batches.length;
      stats.aggregates += result.aggregates;
      stats.trades += result.trades;
      stats.duplicates += result.duplicates;
      stats.ignored += result.ignored;
      stats.appliedEvents += result.appliedEvents;
      stats.duplicateEvents += result.duplicateEvents;
      for (const batch of batches) {
        stats.events += batch.events.length;
        lag.recordValue(Math.min(3_600_000, Math.max(1, Math.ceil(now - batch.receivedAtMs))));
        lagSeconds.record(Math.max(0, now - batch.receivedAtMs) / 1000);
      }
      for (const date of result.dates)
        if (latestDate === undefined || date > latestDate) latestDate = date;
    },
    onAppliedError: (error) => log.error({ err: error }, 'counting an applied group failed'),
  });

  const prefetch = options.prefetch ?? DEFAULTS.transport.prefetch;
  const injectDelayMs = options.injectDelayMs ?? 0;
  let slowed: Promise<void> = Promise.resolve();
  const handle = async (body: Buffer, info: DeliveryInfo): Promise<void> => {
    const { batch, issues } = decodeBatch(body, decodeCounts, checkBoardEvent);
    stats.dropped += issues.length;
    if (batch === undefined) {
      stats.undecodableEvents += eventsOf(info.headers);
      return;
    }
    // The events the check dropped are accounted with the batch, in the ledger, exactly once.
    (batch as LedgerBatch).malformed = issues.length;
    // One span per batch (never per event), a child of the listener's publish span.
    const span = tracer.startSpan(
      'openbell.batch apply',
      {
        kind: SpanKind.CONSUMER,
        attributes: { 'openbell.batch.id': batch.id, 'openbell.batch.events': batch.events.length },
      },
      contextFromHeaders(info.headers),
    );
    if (injectDelayMs > 0)
      await (slowed = slowed.then(
        () => new Promise((resolve) => setTimeout(resolve, injectDelayMs)),
      ));
    try {
      await applier.apply(batch);
      applied.add(span.spanContext());
    } catch (error) {
      stats.applyErrors++;
      span.setStatus({ code: SpanStatusCode.ERROR, message: String(error) });
      throw error;
    } finally {
      span.end();
    }
  };

  const consumer = createBatchConsumer({
    url: options.amqpUrl,
    names,
    group: options.group ?? 'analyzers',
    topology: { ...options.topology, bindings: ANALYZER_BINDINGS },
    log,
    prefetch,
    concurrency: options.concurrency ?? Math.max(1, Math.floor(prefetch / 2)),
    ...options.consumer,
    handle,
    onDeadLetter: async (reason, events, body) => {
      const { batch } = decodeBatch(body, undefined, checkBoardEvent);
      if (batch === undefined) {
        stats.undecodableEvents += events;
        return;
      }
      if (await store.countDeadLetter(batch, reason, events)) stats.deadEvents += events;
      const suppressed = deadLog.take(reason);
      if (suppressed !== undefined)
        log.warn({ reason, events, suppressed }, 'batches dead-lettered by the broker');
    },
  });
  const publisher = createBoardPublisher({
    redis,
    store,
    names,
    log,
    date: () => latestDate,
    intervalMs: options.board.publishIntervalMs,
    top: options.board.top,
    links: applied,
  });
  let started: Promise<void> | undefined;
  let closed: Promise<void> | undefined;
  let unobserve: (() => void) | undefined;
  let ledger: AnalyzerLedger | undefined;
  let ledgerTimer: NodeJS.Timeout | undefined;
  /** Reads the latest date's ledger, then schedules the next read a second after it ended. */
  const pollLedger = (): void => {
    ledgerTimer = setTimeout(() => {
      const date = latestDate;
      const read =
        date === undefined
          ? Promise.resolve()
          : store.ledger(date).then((read) => {
              ledger = { date, readAtMs: Date.now(), ...read };
            });
      read
        .catch((error: unknown) => log.debug({ err: error }, 'reading the ledger failed'))
        .finally(() => {
          if (closed === undefined) pollLedger();
        });
    }, LEDGER_POLL_MS).unref();
  };

  const analyzer: Analyzer = {
    start: () =>
      (started ??= (async () => {
        unobserve = observeAnalyzer(meter, analyzer);
        await consumer.start();
        publisher.start();
        pollLedger();
      })()),
    close: () =>
      (closed ??= (async () => {
        clearTimeout(ledgerTimer);
        await consumer.close();
        await publisher.tick();
        await publisher.close();
        unobserve?.();
      })()),
    stats,
    decodeCounts,
    consumer,
    store,
    publisher,
    lagMs: () => ({
      p50: lag.totalCount === 0 ? 0 : lag.getValueAtPercentile(50),
      p99: lag.totalCount === 0 ? 0 : lag.getValueAtPercentile(99),
      max: lag.totalCount === 0 ? 0 : lag.maxValue,
      count: lag.totalCount,
    }),
    get latestDate() {
      return latestDate;
    },
    get ledger() {
      return ledger;
    },
    health() {
      return {
        ...stats,
        ledger: ledger ?? null,
        consumer: consumer.stats,
        boards: publisher.stats,
        lagMs: this.lagMs(),
        lagHistogram: hdr.encodeIntoCompressedBase64(lag),
        latestDate,
      };
    },
  };
  return analyzer;
}
