import { SpanKind, SpanStatusCode, type Span } from '@opentelemetry/api';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { encodeBatch } from './batch.ts';
import type { EventType, MarketEvent } from './events.ts';
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
  /** Events waiting in the buffer now. */
  bufferedEvents: number;
}

/**
 * The listener's half that never waits for the broker: events are batched per type, sealed
 * batches wait in a bounded FIFO, and a single drain loop hands them to the publisher as fast as
 * its confirms allow. When the FIFO is full the oldest batch is dropped and counted.
 */
export interface Listener {
  /** Takes the events of one frame; never blocks and never throws. */
  push(events: readonly MarketEvent[], receivedAtMs: number): void;
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

/** A batch encoded by {@link encodeBatch} outside the listener. */
export interface EncodedBatch {
  type: EventType;
  body: Buffer;
  /** Events in the batch. */
  count: number;
}

interface OpenBatch {
  events: MarketEvent[];
  receivedAtMs: number;
}

/** A batch waiting for the broker: events still to encode, or an encoded body. */
interface SealedBatch {
  type: EventType;
  count: number;
  batch?: OpenBatch;
  body?: Buffer;
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
    bufferedEvents: 0,
  };
  const open = new Map<EventType, OpenBatch>();
  const ready: SealedBatch[] = [];
  let readyHead = 0;
  let timer: NodeJS.Timeout | undefined;
  let draining: Promise<void> | undefined;
  let closed = false;
  let lastDropLogMs = 0;
  const tracer = openbellTracer();

  const seal = (type: EventType, batch: OpenBatch): void => {
    open.delete(type);
    enqueue({ type, count: batch.events.length, batch });
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
      ...(sealed.batch === undefined ? {} : { startTime: sealed.batch.receivedAtMs }),
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
    for (const [type, batch] of [...open]) seal(type, batch);
    kick();
  };

  const publishReady = (): boolean => {
    while (readyHead < ready.length) {
      const next = ready[readyHead]!;
      // Encoded once: a batch the publisher refuses keeps its body (and id) for the next try.
      next.body ??= encodeBatch({
        v: 1,
        id: `${source}-${++sequence}`,
        receivedAtMs: next.batch!.receivedAtMs,
        events: next.batch!.events,
      });
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
        stats.events[event.ev] = (stats.events[event.ev] ?? 0) + 1;
        let batch = open.get(event.ev);
        if (batch === undefined) open.set(event.ev, (batch = { events: [], receivedAtMs }));
        batch.events.push(event);
        stats.bufferedEvents++;
        if (batch.events.length >= batchMaxEvents) seal(event.ev, batch);
      }
      if (open.size > 0) timer ??= setTimeout(sealAll, batchMaxDelayMs);
      kick();
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
        stats.droppedEvents += stats.bufferedEvents;
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
