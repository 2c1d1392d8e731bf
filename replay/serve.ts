import type { Logger } from 'pino';
import type { Names, Recording, TransportOptions } from '../core/index.ts';
import { createBrokerSink, type BrokerSinkStats } from './broker-sink.ts';
import {
  createMassiveServer,
  type MassiveServer,
  type MassiveServerStats,
} from './massive-server.ts';
import { showProgress } from './progress.ts';
import {
  loadRecordingReference,
  type RecordingReference,
  type RecordingReferenceOptions,
} from './reference.ts';
import { eventsInRange, formatPace, parsePace, rangeOf, replay, type Replay } from './replayer.ts';

/** Options of {@link serveReplay}: a recording, a pace and window, and one destination. */
export interface ServeReplayOptions {
  recording: Recording;
  log: Logger;
  signal?: AbortSignal;
  /** `--speed` (`k` or `max`) and `--rate`; real time when both are absent. */
  speed?: string | undefined;
  rate?: string | undefined;
  /** `--from`/`--to`: New York times of the recording's trading day. */
  from?: string | undefined;
  to?: string | undefined;
  loop?: boolean;
  /** A terminal to draw a progress bar on (nothing is drawn when it is not a TTY). */
  progress?: NodeJS.WriteStream;
  /** Serve a Massive-compatible WebSocket. */
  server?: {
    host: string;
    port: number;
    apiKey: string;
    /** Subscribed clients to wait for before the clock starts. */
    waitClients: number;
    slowConsumerBytes: number;
    /** Called once the server listens (e.g. to start the clients). */
    onListening?(server: MassiveServer): void;
  };
  /** Or publish straight to the events exchange. */
  broker?: {
    amqpUrl: string;
    names: Names;
    group: string;
    transport: TransportOptions;
    /** Encode worker threads (0: the main thread); default one per core, at most 4. */
    workers?: number;
  };
  /**
   * Load the recording's previous closes into this Redis before the clock starts, and again
   * after a state loss while it runs (replay/reference.ts). None are loaded when absent.
   */
  reference?: Omit<RecordingReferenceOptions, 'recording' | 'log'>;
  /** Called when the clock starts, with the running replay (e.g. to sample it). */
  onStart?(run: Replay): void;
  /** Awaited once the destination is ready, before the replay's clock starts. */
  beforeStart?(): Promise<void>;
}

/** What a replay did: counts, rates, and timing against its schedule. */
export interface ReplaySummary {
  pace: string;
  frames: number;
  events: number;
  passes: number;
  /** Wall seconds from the first frame sent to the last. */
  seconds: number;
  eventsPerSec: number;
  /**
   * Wall seconds from the first frame sent until the destination had taken everything: the
   * broker confirmed every batch, or every client's buffer drained. The honest throughput is
   * `events / settledSeconds`.
   */
  settledSeconds: number;
  /** Market seconds replayed, and the wall seconds the schedule intended for them. */
  intendedSeconds: number;
  lateness: { p50Ms: number; p99Ms: number; maxMs: number };
  server?: MassiveServerStats;
  broker?: BrokerSinkStats;
  /** With `reference`: the previous closes stored for `date`, and state losses seen meanwhile. */
  prevCloses?: { date: string | undefined; loaded: number; stateLosses: number };
}

/**
 * Replays a recording to its destination and resolves with a summary once the range is done (or
 * the signal aborts): the WebSocket server waits for its clients' buffers to empty before closing,
 * the broker sink for its publishes to be confirmed.
 */
export async function serveReplay(options: ServeReplayOptions): Promise<ReplaySummary> {
  const { recording, log } = options;
  const pace = parsePace(options.speed, options.rate);
  const range = rangeOf(recording, options.from, options.to);
  const total = eventsInRange(recording, range);
  const reference =
    options.reference === undefined
      ? undefined
      : await loadRecordingReference({ ...options.reference, recording, log });
  try {
    return await serveLoaded(options, pace, range, total, reference);
  } finally {
    await reference?.close();
  }
}

async function serveLoaded(
  options: ServeReplayOptions,
  pace: ReturnType<typeof parsePace>,
  range: ReturnType<typeof rangeOf>,
  total: number,
  reference: RecordingReference | undefined,
): Promise<ReplaySummary> {
  const { recording, log } = options;

  let server: MassiveServer | undefined;
  let destination: Pick<Parameters<typeof replay>[0], 'send' | 'backpressure'>;
  let closeDestination: () => Promise<void>;
  const broker =
    options.broker === undefined ? undefined : createBrokerSink({ ...options.broker, log });
  if (broker !== undefined) {
    await broker.start();
    destination = {
      send: (frame) => broker.send(frame),
      backpressure: () => broker.backpressure(),
    };
    closeDestination = () => broker.close();
  } else if (options.server !== undefined) {
    const s = options.server;
    server = await createMassiveServer({
      host: s.host,
      port: s.port,
      apiKey: s.apiKey,
      slowConsumerBytes: s.slowConsumerBytes,
    });
    const serving = server;
    log.info({ url: serving.url, waitClients: s.waitClients }, 'replayer listening');
    s.onListening?.(serving);
    if (s.waitClients > 0) await waitForClients(serving, s.waitClients, options.signal);
    destination = {
      send: (frame) => serving.broadcast(frame),
      backpressure: () => serving.drained(4 * 1024 * 1024),
    };
    closeDestination = async () => {
      await Promise.race([serving.drained(0), new Promise((r) => setTimeout(r, 10_000))]);
      await serving.close();
    };
  } else {
    throw new Error('replay: no destination (a server or the broker)');
  }

  await options.beforeStart?.();
  log.info({ pace: formatPace(pace), events: total, ...range }, 'replay starting');
  const run = replay({
    recording,
    range,
    pace,
    loop: options.loop === true,
    ...destination,
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
  options.onStart?.(run);
  const stopProgress =
    options.progress === undefined
      ? () => undefined
      : showProgress(run, total, pace, options.progress);
  const started = performance.now();
  try {
    await run.done;
  } finally {
    stopProgress();
    await closeDestination();
  }
  const settledSeconds = (performance.now() - started) / 1000;
  const stats = run.stats;
  const lateness = run.lateness();
  const seconds = stats.elapsedMs / 1000;
  const summary: ReplaySummary = {
    pace: formatPace(pace),
    frames: stats.frames,
    events: stats.events,
    passes: stats.passes,
    seconds: round(seconds, 3),
    eventsPerSec: Math.round(stats.events / Math.max(seconds, 1e-3)),
    settledSeconds: round(settledSeconds, 3),
    intendedSeconds: round(stats.intendedMs / 1000, 3),
    lateness: {
      p50Ms: round(lateness.p50, 3),
      p99Ms: round(lateness.p99, 3),
      maxMs: round(lateness.max, 3),
    },
    ...(server === undefined ? {} : { server: { ...server.stats } }),
    ...(broker === undefined ? {} : { broker: broker.stats() }),
    ...(reference === undefined
      ? {}
      : {
          prevCloses: {
            date: reference.date,
            loaded: reference.loaded,
            stateLosses: Object.values(reference.guard?.stats.losses ?? {}).reduce(
              (sum, n) => sum + n,
              0,
            ),
          },
        }),
  };
  log.info(summary, 'replay finished');
  return summary;
}

const round = (value: number, digits: number): number => Number(value.toFixed(digits));

async function waitForClients(
  server: MassiveServer,
  count: number,
  signal?: AbortSignal,
): Promise<void> {
  while (signal?.aborted !== true) {
    try {
      await server.waitForSubscribers(count, 1000);
      return;
    } catch {
      // Keep waiting until a client subscribes or the replay is stopped.
    }
  }
}
