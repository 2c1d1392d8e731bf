/**
 * The recorder (DESIGN.md section 5): writes a recording from a Massive-protocol WebSocket (the
 * provider's frames, byte for byte) or from a tap on the events exchange (the listener's
 * normalised events). Nothing is lost silently: a write error stops the recorder with that error,
 * and a disconnection from the source, a permanent gap (Massive does not resend, and a tap's
 * queue dies with its connection), is logged and counted in the result.
 */
import type { ChannelModel } from 'amqplib';
import type { Logger } from 'pino';
import {
  ConfigError,
  assertEventExchange,
  connectRecovering,
  createMassiveClient,
  createRecordingWriter,
  decodeBatch,
  describeFrame,
  redactUrl,
  typeBit,
  type Names,
  type RecordingMeta,
  type RecordingWriter,
  type RecoveringConnection,
} from '../core/index.ts';

/** Options both recorders take. */
export interface RecordOptions {
  /** Path of the recording to create. */
  output: string;
  /** Reference data for the header (trading date, previous closes). @default {} */
  meta?: RecordingMeta;
  log: Logger;
  /** Replace an existing file instead of refusing to. */
  overwrite?: boolean;
  /** What stops the recording, whichever comes first; the file is then closed and indexed. */
  signal?: AbortSignal;
  durationMs?: number;
  maxFrames?: number;
  /** Called once, when the source first streams (WebSocket) or the tap's queue consumes. */
  onReady?(): void;
  /** Called about once a second while recording. */
  onProgress?(stats: RecorderStats): void;
}

/** Options of {@link recordFromWebSocket}. */
export interface RecordWebSocketOptions extends RecordOptions {
  /** Massive-protocol WebSocket URL (Massive itself, or a replayer). */
  url: string;
  apiKey: string;
  /** @default DEFAULT_TOPICS of core (`A.*`, `T.*`) */
  topics?: readonly string[];
}

/** Options of {@link recordFromExchange}. */
export interface RecordExchangeOptions extends RecordOptions {
  /** AMQP URL of the broker, vhost included. */
  amqpUrl: string;
  names: Names;
  /** Routing keys (event types) the tap's queue is bound with. @default ['#'] */
  bindings?: readonly string[];
}

/** Counters of a running recorder. */
export interface RecorderStats {
  /** Frames, messages and raw frame bytes written. */
  frames: number;
  events: number;
  bytes: number;
  /** Connection attempts after the first. */
  reconnects: number;
  /** Times the source was lost once recording had begun (each a gap), and for how long in all. */
  gaps: number;
  disconnectedMs: number;
  /** Tap: batches that failed to decode, whole or in part (bad events are not recorded). */
  badBatches: number;
  /** Frames whose receive time was raised to the previous frame's (batches of types interleave). */
  clampedFrames: number;
  elapsedMs: number;
}

/** What a recorder wrote, once the recording is closed. */
export interface RecorderResult extends RecorderStats {
  output: string;
  stoppedBy: 'signal' | 'duration' | 'maxFrames';
}

type StopReason = RecorderResult['stoppedBy'];

/** How often a recorder looks for a write error while no frame arrives. */
const CHECK_MS = 250;
/** How long the writer may stay above its high-water mark before a warning. */
const HIGH_WARN_MS = 1000;
const PREFETCH = 256;

/**
 * Records every frame carrying events from a Massive-protocol WebSocket, raw, timed on arrival,
 * reconnecting as core's Massive client does. Resolves when stopped (signal, duration, frames);
 * rejects with the writer's error or the client's (e.g. authentication failed).
 */
export async function recordFromWebSocket(
  options: RecordWebSocketOptions,
): Promise<RecorderResult> {
  let session: Session | undefined;
  const { url, apiKey, topics, log } = options;
  const onFrame = (data: Buffer, receivedAtMs: number) =>
    session?.write(Math.round(receivedAtMs * 1000), data, describeFrame(data));
  const client = createMassiveClient({ url, apiKey, topics, log, onFrame, onEvents: () => {} });
  client.onStateChange((state) => {
    if (session === undefined) return;
    session.stats.reconnects = client.stats.reconnects;
    if (state === 'streaming') session.ready();
    else if (state === 'backoff' || state === 'cooldown') session.lost();
    else if (state === 'failed') session.fail(client.error ?? new Error('massive client failed'));
  });
  return record(options, redactUrl(url), (s) => {
    session = s;
    client.start();
    return () => client.close();
  });
}

/**
 * Records the batches on the events exchange through an exclusive, auto-delete queue of its own:
 * one frame per batch, timed by the batch's receive time, holding the JSON of its events (in
 * order; acknowledged once buffered). A tap records the listener's normalised events
 * (core/events.ts: `sym` for every ticker, ms timestamps), not the provider's bytes.
 */
export async function recordFromExchange(options: RecordExchangeOptions): Promise<RecorderResult> {
  const { amqpUrl, names, log } = options;
  const bindings = options.bindings ?? ['#'];
  if (bindings.length === 0) throw new ConfigError('bindings', 'must not be empty');
  return record(options, `amqp:${names.exchange}`, (session) => {
    let recovering: RecoveringConnection | undefined;
    const setup = async (model: ChannelModel): Promise<void> => {
      const channel = await model.createChannel();
      const renew = (why: string) => session.stopping || recovering?.renew(model, why);
      channel.on('error', (error: Error) => log.warn({ err: error }, 'tap channel error'));
      channel.on('close', () => renew('the tap channel closed'));
      await assertEventExchange(channel, names);
      const { queue } = await channel.assertQueue('', { exclusive: true, autoDelete: true });
      for (const key of bindings) await channel.bindQueue(queue, names.exchange, key);
      await channel.prefetch(PREFETCH);
      await channel.consume(queue, (message) => {
        if (message === null) return void renew('the tap consumer was cancelled');
        if (session.stopping) return;
        const { batch, issues } = decodeBatch(message.content);
        const timeUs = Math.round((batch?.receivedAtMs ?? 0) * 1000);
        const timed = Number.isSafeInteger(timeUs) && timeUs >= 0;
        if (issues.length > 0 || !timed) {
          const count = ++session.stats.badBatches;
          const issue = issues[0] ?? { reason: 'batch_invalid', detail: 'bad receivedAtMs' };
          if ((count & (count - 1)) === 0) log.warn({ badBatches: count, issue }, 'tap: bad batch');
        }
        if (batch !== undefined && timed && batch.events.length > 0) {
          let types = 0;
          for (const event of batch.events) types |= typeBit(event.ev);
          const data = Buffer.from(JSON.stringify(batch.events));
          if (!session.write(timeUs, data, { events: batch.events.length, types })) return;
        }
        channel.ack(message);
      });
    };
    const connecting = connectRecovering({
      url: amqpUrl,
      log,
      role: 'recorder tap',
      reconnectInitialMs: 100,
      reconnectMaxMs: 5000,
      setup,
      onConnect: (again) => {
        if (again) session.stats.reconnects++;
        session.ready();
      },
      onDisconnect: () => session.lost(),
    });
    connecting.then(
      (connection) => {
        recovering = connection;
        connection.ready.catch((error: unknown) => session.fail(error));
      },
      (error: unknown) => session.fail(error),
    );
    return async () => void (await (await connecting.catch(() => undefined))?.close());
  });
}

/** One recording in progress, as its source sees it. */
class Session {
  readonly stats = { reconnects: 0, gaps: 0, disconnectedMs: 0, badBatches: 0, clampedFrames: 0 };
  readonly done = Promise.withResolvers<StopReason>();
  stopping = false;
  readonly #writer: RecordingWriter;
  readonly #options: RecordOptions;
  readonly #startedAt = performance.now();
  #lastUs = 0;
  #highSince: number | undefined;
  #warnedHigh = false;
  #lostAt: number | undefined;
  #ready = false;

  constructor(writer: RecordingWriter, options: RecordOptions) {
    this.#writer = writer;
    this.#options = options;
    this.done.promise.catch(() => undefined); // Awaited by record(); an early failure is handled.
  }

  /** Appends a frame, its time clamped to the previous one's; false when nothing was written. */
  write(timeUs: number, data: Buffer, info: { events: number; types: number }): boolean {
    if (this.stopping) return false;
    if (timeUs < this.#lastUs) this.stats.clampedFrames++;
    this.#lastUs = Math.max(this.#lastUs, timeUs);
    let below: boolean;
    try {
      below = this.#writer.write({ timeUs: this.#lastUs, data, ...info });
    } catch (error) {
      this.fail(error);
      return false;
    }
    const now = performance.now();
    if (below) this.#highSince = undefined;
    else if ((this.#highSince ??= now) + HIGH_WARN_MS <= now && !this.#warnedHigh) {
      this.#warnedHigh = true;
      this.#options.log.warn('recording: the disk is not keeping up; frames pile up in memory');
    }
    const { maxFrames } = this.#options;
    if (maxFrames !== undefined && this.#writer.frames >= maxFrames) this.stop('maxFrames');
    return true;
  }

  /** Ends the recording, or fails it with an error; the first call wins. */
  stop(reason: StopReason): void {
    if (!this.stopping) this.done.resolve(reason);
    this.stopping = true;
  }

  fail(error: unknown): void {
    if (!this.stopping) this.done.reject(error);
    this.stopping = true;
  }

  /** The source streams: the first time, recording has begun; later, a gap has ended. */
  ready(): void {
    if (this.#lostAt !== undefined) this.stats.disconnectedMs += performance.now() - this.#lostAt;
    this.#lostAt = undefined;
    if (this.#ready) return;
    this.#ready = true;
    this.#options.log.info({ output: this.#options.output }, 'recording');
    this.#options.onReady?.();
  }

  /** The source is lost after recording began: a permanent gap. */
  lost(): void {
    if (!this.#ready || this.stopping || this.#lostAt !== undefined) return;
    this.#lostAt = performance.now();
    this.stats.gaps++;
    this.#options.log.warn({ gaps: this.stats.gaps }, 'recording gap: the source is lost');
  }

  snapshot(): RecorderStats {
    const lostMs = this.#lostAt === undefined ? 0 : performance.now() - this.#lostAt;
    return {
      ...this.stats,
      frames: this.#writer.frames,
      events: this.#writer.events,
      bytes: this.#writer.bytes,
      disconnectedMs: Math.round(this.stats.disconnectedMs + lostMs),
      elapsedMs: Math.round(performance.now() - this.#startedAt),
    };
  }
}

/**
 * Creates the recording and writes its header (failing before `begin` if the disk does), runs
 * the source `begin` starts until a stop condition or a failure, then closes the source (with
 * what `begin` returned) and the writer. Rejects with the first error.
 */
async function record(
  options: RecordOptions,
  source: string,
  begin: (session: Session) => () => Promise<void>,
): Promise<RecorderResult> {
  const { output, log, signal, durationMs, maxFrames } = options;
  for (const [field, value] of Object.entries({ durationMs, maxFrames })) {
    if (value !== undefined && (!Number.isSafeInteger(value) || value < 1)) {
      throw new ConfigError(field, `must be an integer ≥ 1, got ${value}`);
    }
  }
  const overwrite = options.overwrite === true;
  const writer = await createRecordingWriter(output, options.meta ?? {}, { source, overwrite });
  await writer.flush().catch(async (error: unknown) => {
    await writer.abort();
    throw error;
  });
  const session = new Session(writer, options);
  const onAbort = (): void => session.stop('signal');
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted === true) onAbort();
  const progress = (): void => {
    try {
      options.onProgress?.(session.snapshot());
    } catch (error) {
      log.warn({ err: error }, 'recorder onProgress threw');
    }
  };
  let checking = false;
  const check = (): void => {
    if (checking) return;
    checking = true;
    const fail = (error: unknown) => session.fail(error);
    writer.drain().then(() => void (checking = false), fail);
  };
  const timers = [setInterval(check, CHECK_MS).unref(), setInterval(progress, 1000).unref()];
  if (durationMs !== undefined) timers.push(setTimeout(() => session.stop('duration'), durationMs));

  let failure: { error: unknown } | undefined;
  let stoppedBy: StopReason = 'signal';
  let closeSource: (() => Promise<void>) | undefined;
  try {
    closeSource = begin(session);
    stoppedBy = await session.done.promise;
  } catch (error) {
    session.fail(error);
    failure = { error };
  } finally {
    signal?.removeEventListener('abort', onAbort);
    for (const timer of timers) clearTimeout(timer);
  }
  await closeSource?.().catch((error: unknown) => void (failure ??= { error }));
  const totals = await writer.close().catch((error: unknown) => void (failure ??= { error }));
  const stats = session.snapshot();
  if (failure !== undefined) {
    log.error({ err: failure.error, ...stats }, 'recording failed');
    throw failure.error;
  }
  log.info({ ...stats, output, firstUs: totals?.firstUs, lastUs: totals?.lastUs }, 'recorded');
  return { ...stats, output, stoppedBy };
}
