import { availableParallelism } from 'node:os';
import type { Logger } from 'pino';
import {
  createBatchPublisher,
  createDecodeCounts,
  createListener,
  declareAnalyzerQueue,
  decodeFrame,
  type DecodeCounts,
  type Names,
  type RecordedFrame,
  type TransportOptions,
} from '../core/index.ts';
import { createEncodePool, type EncodePool } from './encode-pool.ts';

/** Options of {@link createBrokerSink}. */
export interface BrokerSinkOptions {
  amqpUrl: string;
  names: Names;
  log: Logger;
  /** The analyzers' group whose queue is declared first, so no batch goes unrouted. */
  group: string;
  transport: TransportOptions;
  /**
   * Worker threads that decode and encode frames (0: all on the main thread).
   * @default the machine's available parallelism, at most 4
   */
  workers?: number;
}

/** Events published, and dropped because the broker fell behind; encode workers started. */
export interface BrokerSinkStats {
  events: number;
  batches: number;
  dropped: number;
  workers: number;
}

/** Default number of encode workers: one per core, up to 4. */
export const DEFAULT_ENCODE_WORKERS = Math.min(4, availableParallelism());

/** Replays straight to the events exchange, batched and published exactly as the listener does. */
export interface BrokerSink {
  start(): Promise<void>;
  send(frame: RecordedFrame): void;
  /** Resolves once the listener's buffer is below half its bound (for `--speed max`). */
  backpressure(): Promise<void>;
  close(): Promise<void>;
  readonly decodeCounts: Readonly<DecodeCounts>;
  stats(): BrokerSinkStats;
}

/**
 * A sink that decodes each recorded frame and publishes its events as msgpack batches (routing
 * key = event type) on a confirm channel, through the same bounded listener the mdp runs.
 * Decoding and encoding, the costly part, run on a pool of worker threads fed chunks of frames
 * (sealed at `batchMaxEvents × 4` events or after `batchMaxDelayMs`); the main thread reads the
 * recording and publishes. Receive times are those of the replay, so lag is measured from the
 * moment of sending.
 */
export function createBrokerSink(options: BrokerSinkOptions): BrokerSink {
  const { log, transport } = options;
  const publisher = createBatchPublisher({
    url: options.amqpUrl,
    names: options.names,
    log,
    persistent: transport.delivery === 'persistent',
  });
  const listener = createListener({
    publisher,
    log,
    batchMaxEvents: transport.batchMaxEvents,
    batchMaxDelayMs: transport.batchMaxDelayMs,
    bufferMaxEvents: transport.bufferMaxEvents,
  });
  const decodeCounts = createDecodeCounts();
  const high = Math.max(1, Math.floor(transport.bufferMaxEvents / 2));
  const chunkMaxEvents = transport.batchMaxEvents * 4;
  let pool: EncodePool | undefined;
  let workersStarted = 0;
  let chunk: RecordedFrame[] = [];
  let chunkEvents = 0;
  let chunkAtMs = 0;
  let timer: NodeJS.Timeout | undefined;
  /** Events handed to the workers and not back yet. */
  let encoding = 0;
  const inFlight = new Set<Promise<void>>();

  const pushInThread = (frames: readonly RecordedFrame[], receivedAtMs: number): void => {
    for (const frame of frames) {
      const { events } = decodeFrame(frame.data, decodeCounts);
      if (events.length > 0) listener.push(events, receivedAtMs);
    }
  };

  const dispatch = (): void => {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
    const frames = chunk;
    const events = chunkEvents;
    const receivedAtMs = chunkAtMs;
    chunk = [];
    chunkEvents = 0;
    if (frames.length === 0) return;
    encoding += events;
    const done = pool!.encode(frames, receivedAtMs).then((batches) => {
      encoding -= events;
      inFlight.delete(done);
      if (batches === undefined) pushInThread(frames, receivedAtMs);
      else for (const batch of batches) listener.pushEncoded(batch);
    });
    inFlight.add(done);
  };

  return {
    async start() {
      await declareAnalyzerQueue(options.amqpUrl, options.names, options.group, {
        queueTtlMs: transport.queueTtlMs,
        queueMaxLength: transport.queueMaxLength,
      });
      await publisher.start();
      const workers = options.workers ?? DEFAULT_ENCODE_WORKERS;
      if (workers > 0) {
        pool = await createEncodePool({
          size: workers,
          batchMaxEvents: transport.batchMaxEvents,
          counts: decodeCounts,
          log,
        });
        workersStarted = pool.size;
      }
    },
    send(frame) {
      if (pool === undefined || pool.size === 0) {
        pushInThread([frame], performance.timeOrigin + performance.now());
        return;
      }
      if (chunk.length === 0) {
        chunkAtMs = performance.timeOrigin + performance.now();
        timer = setTimeout(dispatch, transport.batchMaxDelayMs);
      }
      chunk.push(frame);
      chunkEvents += frame.events;
      if (chunkEvents >= chunkMaxEvents) dispatch();
    },
    async backpressure() {
      while (encoding + listener.stats.bufferedEvents > high)
        await new Promise((resolve) => setTimeout(resolve, 1));
    },
    async close() {
      dispatch();
      while (inFlight.size > 0) await Promise.all(inFlight);
      await pool?.close();
      await listener.close(10_000);
      await publisher.close();
    },
    decodeCounts,
    stats: () => {
      const s = listener.stats;
      const events = Object.values(s.events).reduce((sum, n) => sum + n, 0);
      const dropped = s.droppedEvents + s.closedEvents;
      return { events, batches: s.batches, dropped, workers: workersStarted };
    },
  };
}
