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

/** Options of {@link createBrokerSink}. */
export interface BrokerSinkOptions {
  amqpUrl: string;
  names: Names;
  log: Logger;
  /** The analyzers' group whose queue is declared first, so no batch goes unrouted. */
  group: string;
  transport: TransportOptions;
}

/** Replays straight to the events exchange, batched and published exactly as the listener does. */
export interface BrokerSink {
  start(): Promise<void>;
  send(frame: RecordedFrame): void;
  /** Resolves once the listener's buffer is below half its bound (for `--speed max`). */
  backpressure(): Promise<void>;
  close(): Promise<void>;
  readonly decodeCounts: Readonly<DecodeCounts>;
  /** Events published, and dropped because the broker fell behind. */
  stats(): { events: number; batches: number; dropped: number };
}

/**
 * A sink that decodes each recorded frame and publishes its events as msgpack batches (routing
 * key = event type) on a confirm channel, through the same bounded listener the mdp runs.
 * Receive times are those of the replay, so lag is measured from the moment of sending.
 */
export function createBrokerSink(options: BrokerSinkOptions): BrokerSink {
  const { log, transport } = options;
  const publisher = createBatchPublisher({ url: options.amqpUrl, names: options.names, log });
  const listener = createListener({
    publisher,
    log,
    batchMaxEvents: transport.batchMaxEvents,
    batchMaxDelayMs: transport.batchMaxDelayMs,
    bufferMaxEvents: transport.bufferMaxEvents,
  });
  const decodeCounts = createDecodeCounts();
  const high = Math.max(1, Math.floor(transport.bufferMaxEvents / 2));
  return {
    async start() {
      await declareAnalyzerQueue(options.amqpUrl, options.names, options.group, {
        queueTtlMs: transport.queueTtlMs,
        queueMaxLength: transport.queueMaxLength,
      });
      await publisher.start();
    },
    send(frame) {
      const { events } = decodeFrame(frame.data, decodeCounts);
      if (events.length > 0) listener.push(events, performance.timeOrigin + performance.now());
    },
    async backpressure() {
      while (listener.stats.bufferedEvents > high)
        await new Promise((resolve) => setTimeout(resolve, 1));
    },
    async close() {
      await listener.close(10_000);
      await publisher.close();
    },
    decodeCounts,
    stats: () => {
      const s = listener.stats;
      const events = Object.values(s.events).reduce((sum, n) => sum + n, 0);
      return { events, batches: s.batches, dropped: s.droppedEvents };
    },
  };
}
