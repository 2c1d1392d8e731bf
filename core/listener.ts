import { SpanKind, SpanStatusCode, type Span } from '@opentelemetry/api';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { RecordBuffer, StagedEvents, transcodeFrame, typeIndex } from './event-records.ts';
import { EVENT_TYPES, type EventType, type MarketEvent } from './events.ts';
import type { BatchPublisher } from './publisher.ts';
import { EVENTS_HEADER } from './topology.ts';
import { openbellTracer, traceHeaders } from './tracing.ts';

/** Options of {@link createListener}. */
export interface ListenerOptions {
  publisher: BatchPublisher;
  log: Logger;
  /** Events per batch. @default 500 */
  batchMaxEvents?: number;
  /** Longest an event waits for its batch to fill. @default 10 */
  batchMaxDelayMs?: number;
  /** Events held while the broker is slow; past it the oldest batches are dropped and counted. @default 1000000 */
  bufferMaxEvents?: number;
}

/** Counters of a {@link Listener}. */
export interface ListenerStats {
  /** Events received, by type. */
  events: Partial<Record<EventType, number>>;
  batches: number;
  /** Events dropped because the buffer was full (oldest first). */
  droppedEvents: number;
  droppedBatches: number;
  /** Events still buffered when the listener closed (the broker did not take them in time). */
  closedEvents: number;
  /** Events waiting in the buffer now. */
  bufferedEvents: number;
}

/**
 * The listener's half that never waits for the broker: events are batched per type, sealed
 * batches wait in a bounded FIFO, and a single drain loop hands them to the publisher as fast as
 * its confirms allow. When the FIFO is full the oldest batch is dropped and counted.
 */
export interface Listener {
  /**
   * Takes the events of one frame, as the decoder returns them; never blocks, and never throws
   * for such events (a value no event field can hold throws, taking nothing of that event).
   */
  push(events: readonly MarketEvent[], receivedAtMs: number): void;
  /**
   * Takes a whole frame's JSON bytes when it can read them straight into batches (see
   * {@link transcodeFrame}) and returns how many events it took; returns `undefined`, having
   * taken nothing, for a frame to decode and {@link Listener.push} the ordinary way. Never
   * blocks and never throws.
   */
  pushFrame(frame: Buffer, receivedAtMs: number): number | undefined;
  /**
   * Takes a batch already sealed and encoded elsewhere (e.g. by a worker thread), with its own
   * unique id; it joins the same bounded FIFO, drop policy and counters as pushed events.
   */
  pushEncoded(batch: EncodedBatch): void;
  readonly stats: Readonly<ListenerStats>;
  /** Seals open batches and waits (at most `timeoutMs`, default 5 s) for the buffer to drain. */
  flush(timeoutMs?: number): Promise<void>;
  /** Flushes (bounded), stops, and counts whatever is still buffered as dropped. */
  close(timeoutMs?: number): Promise<void>;
}

/** A batch encoded (as {@link encodeBatch} does) outside the listener. */
export interface EncodedBatch {
  type: EventType;
  body: Buffer;
  /** Events in the batch. */
  count: number;
}

/** The batch being filled for one event type: its events written as records as they come. */
interface OpenBatch {
  records: RecordBuffer;
  /** Receive time of its first event, epoch ms; NaN while it is empty. */
  receivedAtMs: number;
}

/** A batch waiting for the broker. */
interface SealedBatch {
  type: EventType;
  count: number;
  body: Buffer;
  /** Receive time of its first event, when the listener batched it. */
  receivedAtMs?: number;
  /** Its publish span and message headers, made on its first publish attempt. */
  span?: Span;
  headers?: Record<string, unknown>;
}

/** Creates a listener publishing through `publisher` (which the caller starts and closes). */
export function createListener(options: ListenerOptions): Listener {
  const batchMaxEvents = options.batchMaxEvents ?? 500;
  const batchMaxDelayMs = options.batchMaxDelayMs ?? 10;
  const bufferMaxEvents = options.bufferMaxEvents ?? 1_000_000;
  const { publisher, log } = options;
  // Batch ids are unique across processes and restarts: analyzers dedupe redeliveries by them.
  const source = randomBytes(6).toString('hex');
  let sequence = 0;
  const stats: ListenerStats = {
    events: {},
    batches: 0,
    droppedEvents: 0,
    droppedBatches: 0,
    closedEvents: 0,
    bufferedEvents: 0,
  };
  // One open batch per event type (by index in EVENT_TYPES), its buffer reused batch after batch.
  const open: OpenBatch[] = EVENT_TYPES.map((type) => ({
    records: new RecordBuffer(type),
    receivedAtMs: Number.NaN,
  }));
  const staged = new StagedEvents();
  const ready: SealedBatch[] = [];
  let readyHead = 0;
  let timer: NodeJS.Timeout | undefined;
  let draining: Promise<void> | undefined;
  let closed = false;
  let lastDropLogMs = 0;
  const tracer = openbellTracer();

  const seal = (batch: OpenBatch): void => {
    const { records, receivedAtMs } = batch;
    const count = records.count;
    const body = records.seal(`${source}-${++sequence}`, receivedAtMs);
    batch.receivedAtMs = Number.NaN;
    enqueue({ type: records.type, count, body, receivedAtMs });
  };

  /** Notes one more event in `batch`, sealing it when full. */
  const added = (batch: OpenBatch, receivedAtMs: number): void => {
    const type = batch.records.type;
    stats.events[type] = (stats.events[type] ?? 0) + 1;
    stats.bufferedEvents++;
    if (batch.records.count === 1) batch.receivedAtMs = receivedAtMs;
    if (batch.records.count >= batchMaxEvents) seal(batch);
  };

  /** Arms the delay that seals partly filled batches, and starts the drain loop. */
  const pushed = (): void => {
    if (open.some((batch) => batch.records.count > 0))
      timer ??= setTimeout(sealAll, batchMaxDelayMs);
    kick();
  };

  const enqueue = (batch: SealedBatch): void => {
    ready.push(batch);
    while (stats.bufferedEvents > bufferMaxEvents && readyHead < ready.length) dropOldest();
  };

  // The FIFO is an array with a moving head; compacting now and then keeps it bounded.
  const advance = (): void => {
    ready[readyHead++] = undefined as unknown as SealedBatch;
    if (readyHead === ready.length) {
      ready.length = 0;
      readyHead = 0;
    } else if (readyHead >= 1024 && readyHead * 2 >= ready.length) {
      ready.splice(0, readyHead);
      readyHead = 0;
    }
  };

  /**
   * One span per batch, from the receive of its first event to its hand-over to the broker; its
   * context travels in the message headers to the analyzers.
   */
  const startPublishSpan = (sealed: SealedBatch): Record<string, unknown> => {
    const span = tracer.startSpan('openbell.batch publish', {
      kind: SpanKind.PRODUCER,
      ...(sealed.receivedAtMs === undefined ? {} : { startTime: sealed.receivedAtMs }),
      attributes: { 'openbell.event.type': sealed.type, 'openbell.batch.events': sealed.count },
    });
    // A sampled-out span still sends its context (flags 00): the analyzers' spans follow it.
    if (span.isRecording()) sealed.span = span;
    return { [EVENTS_HEADER]: sealed.count, ...traceHeaders(span.spanContext()) };
  };

  const dropOldest = (): void => {
    const oldest = ready[readyHead]!;
    oldest.span?.setStatus({ code: SpanStatusCode.ERROR, message: 'dropped: buffer full' });
    oldest.span?.end();
    advance();
    stats.bufferedEvents -= oldest.count;
    stats.droppedEvents += oldest.count;
    stats.droppedBatches++;
    if (Date.now() - lastDropLogMs > 10_000) {
      lastDropLogMs = Date.now();
      log.warn(
        { droppedEvents: stats.droppedEvents, bufferMaxEvents },
        'listener buffer full: dropping the oldest batches',
      );
    }
  };

  const sealAll = (): void => {
    timer = undefined;
    for (const batch of open) if (batch.records.count > 0) seal(batch);
    kick();
  };

  const publishReady = (): boolean => {
    while (readyHead < ready.length) {
      const next = ready[readyHead]!;
      next.headers ??= startPublishSpan(next);
      if (!publisher.tryPublish(next.type, next.body, next.headers)) return false;
      next.span?.end();
      advance();
      stats.bufferedEvents -= next.count;
      stats.batches++;
    }
    return true;
  };

  const drain = async (): Promise<void> => {
    while (!publishReady() && !closed) {
      try {
        await publisher.whenWritable();
      } catch {
        // The publisher is closing: nothing more can go out; close() counts what is left.
        closed = true;
        return;
      }
    }
  };

  const kick = (): void => {
    draining ??= drain().finally(() => {
      draining = undefined;
      if (readyHead < ready.length && !closed) kick();
    });
  };

  /** Waits for the drain loop, at most `timeoutMs`. */
  const settle = async (timeoutMs: number): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    while (draining !== undefined && Date.now() < deadline) {
      await Promise.race([
        draining,
        new Promise((r) => setTimeout(r, deadline - Date.now()).unref()),
      ]);
    }
  };

  return {
    push(events, receivedAtMs) {
      for (const event of events) {
        const batch = open[typeIndex(event.ev)]!;
        batch.records.writeEvent(event);
        added(batch, receivedAtMs);
      }
      pushed();
    },
    pushFrame(frame, receivedAtMs) {
      const count = transcodeFrame(frame, staged);
      if (count === undefined) return undefined;
      const { bytes, types, starts, ends } = staged;
      for (let n = 0; n < count; n++) {
        const batch = open[types[n]!]!;
        batch.records.appendStaged(bytes, starts[n]!, ends[n]!);
        added(batch, receivedAtMs);
      }
      staged.trim();
      pushed();
      return count;
    },
    pushEncoded(batch) {
      stats.events[batch.type] = (stats.events[batch.type] ?? 0) + batch.count;
      stats.bufferedEvents += batch.count;
      enqueue({ type: batch.type, count: batch.count, body: batch.body });
      kick();
    },
    stats,
    async flush(timeoutMs = 5000) {
      if (timer !== undefined) clearTimeout(timer);
      sealAll();
      await settle(timeoutMs);
    },
    async close(timeoutMs = 5000) {
      await this.flush(timeoutMs);
      closed = true;
      if (stats.bufferedEvents > 0) {
        // The broker did not take them in time: they are lost, and said so.
        stats.closedEvents += stats.bufferedEvents;
        log.warn(
          { droppedEvents: stats.bufferedEvents },
          'listener closed with events still buffered',
        );
        stats.bufferedEvents = 0;
        for (let n = readyHead; n < ready.length; n++) ready[n]!.span?.end();
        ready.length = 0;
        readyHead = 0;
      }
    },
  };
}
