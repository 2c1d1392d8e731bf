import type { ChannelModel, ConfirmChannel } from 'amqplib';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { ServiceError } from './errors.ts';
import type { Names } from './names.ts';
import {
  EVENTS_HEADER,
  assertEventExchange,
  connectRecovering,
  type RecoveringConnection,
} from './topology.ts';

/** Options of {@link createBatchPublisher}. */
export interface BatchPublisherOptions {
  /** AMQP URL of the broker, vhost included. */
  url: string;
  names: Names;
  log: Logger;
  /**
   * Published messages the broker has not confirmed yet; at this many, tryPublish refuses.
   * @default 256
   */
  maxInFlight?: number;
  /** First reconnect delay; it doubles, with jitter, after each failed attempt. @default 100 */
  reconnectInitialMs?: number;
  /** Longest reconnect delay. @default 5000 */
  reconnectMaxMs?: number;
  /** Longest {@link BatchPublisher.close} waits for outstanding confirms. @default 5000 */
  closeTimeoutMs?: number;
  /**
   * Publish persistent messages (delivery mode 2), so that batches in a durable queue survive a
   * broker restart and the broker confirms them only once they are safe. @default true
   */
  persistent?: boolean;
}

/**
 * Live counters of a {@link BatchPublisher}. A batch ends confirmed (possibly unroutable), nacked or,
 * only when the publisher closes before the broker confirmed it, lost; a batch whose connection
 * dropped before its confirm is published again once reconnected.
 */
export interface BatchPublisherStats {
  /** Messages handed to the broker (a batch published again after a reconnect counts again). */
  published: number;
  /** Messages the broker confirmed. */
  confirmed: number;
  /**
   * Messages no queue took (no consumer group declared for their routing key): the broker
   * returns them (they are published `mandatory`) and still confirms them. Lost, counted.
   */
  unroutable: number;
  /** Events in {@link BatchPublisherStats.unroutable} messages (from their events header). */
  unroutableEvents: number;
  /** Messages the broker refused (nack): lost, counted. */
  nacked: number;
  /** Events in {@link BatchPublisherStats.nacked} messages. */
  nackedEvents: number;
  /**
   * Batches published again after their connection dropped before the broker confirmed them.
   * The broker may have taken the first copy too: analyzers apply a batch id once.
   */
  resent: number;
  /**
   * Batches still unconfirmed when the publisher closed (after `closeTimeoutMs`, or with the
   * broker unreachable): they may or may not have reached a queue. Counted, never resent.
   */
  lost: number;
  /** Events in {@link BatchPublisherStats.lost} batches. */
  lostEvents: number;
  /** Messages awaiting a confirm, and batches waiting to be published again. */
  inFlight: number;
  /** Connections re-established after a loss. */
  reconnects: number;
  connected: boolean;
}

/**
 * Publishes already-encoded event batches to the events exchange over a confirm channel. It holds
 * only what awaits a confirm (at most `maxInFlight` batches): when it cannot take a batch it says
 * so, and the caller keeps the batch in its own bounded buffer. On connection loss it reconnects
 * with jittered backoff and publishes every unconfirmed batch again first (the broker may have
 * taken some of them: batch ids make applying them idempotent).
 */
export interface BatchPublisher {
  /**
   * Connects (retrying with backoff until {@link BatchPublisher.close}) and asserts the exchange;
   * rejects with a ConfigError when the exchange exists with another type, or a ServiceError when
   * closed first. Idempotent.
   */
  start(): Promise<void>;
  /**
   * Publishes one batch (routing key = event type; the caller sets the `x-openbell-events`
   * header, `EVENTS_HEADER`, to its event count). Returns false without publishing when
   * `maxInFlight` messages await confirms, the channel's write buffer is full (until its
   * 'drain'), the broker blocks publishers, or the connection is down: the caller keeps the
   * batch in its own bounded buffer and calls {@link BatchPublisher.whenWritable}.
   */
  tryPublish(routingKey: string, body: Buffer, headers: Record<string, unknown>): boolean;
  /** Resolves when tryPublish can accept again (capacity or reconnection); rejects once closing. */
  whenWritable(): Promise<void>;
  readonly stats: Readonly<BatchPublisherStats>;
  /**
   * Waits for outstanding confirms (up to `closeTimeoutMs`, resending through a reconnection),
   * then closes; what is still unconfirmed then is counted `lost`. Idempotent.
   */
  close(): Promise<void>;
}

const DEFAULTS = {
  maxInFlight: 256,
  reconnectInitialMs: 100,
  reconnectMaxMs: 5000,
  closeTimeoutMs: 5000,
  persistent: true,
} satisfies Partial<BatchPublisherOptions>;
const NACK_LOG_INTERVAL_MS = 10_000;

/** Creates a {@link BatchPublisher}; nothing connects before `start()`. */
export function createBatchPublisher(options: BatchPublisherOptions): BatchPublisher {
  return new AmqpBatchPublisher(options);
}

class AmqpBatchPublisher implements BatchPublisher {
  readonly stats: BatchPublisherStats = {
    published: 0,
    confirmed: 0,
    nacked: 0,
    nackedEvents: 0,
    unroutable: 0,
    unroutableEvents: 0,
    resent: 0,
    lost: 0,
    lostEvents: 0,
    inFlight: 0,
    reconnects: 0,
    connected: false,
  };
  private readonly options: Required<BatchPublisherOptions>;
  private readonly log: Logger;
  private connection: RecoveringConnection | undefined;
  /** Set while the channel accepts publishes. */
  private channel: ConfirmChannel | undefined;
  /** Made by `setup`, adopted once the connection counts as connected. */
  private ready: ConfirmChannel | undefined;
  /** The channel's write buffer is full: wait for its 'drain'. */
  private draining = false;
  /** The broker blocks publishers (memory or disk alarm). */
  private blocked = false;
  private closing = false;
  private writable: PromiseWithResolvers<void> | undefined;
  private nackLoggedAtMs = -Infinity;
  private returnLoggedAtMs = -Infinity;
  private started: Promise<void> | undefined;
  private closed: Promise<void> | undefined;
  /** Published and not yet confirmed, in publish order. */
  private readonly unconfirmed = new Set<Outgoing>();
  /** Unconfirmed when their connection dropped: published again first once reconnected. */
  private unsent: Outgoing[] = [];
  /** Resolves when nothing awaits a confirm or a resend (for close). */
  private settled: PromiseWithResolvers<void> | undefined;

  constructor(options: BatchPublisherOptions) {
    this.options = {
      ...options,
      maxInFlight: options.maxInFlight ?? DEFAULTS.maxInFlight,
      reconnectInitialMs: options.reconnectInitialMs ?? DEFAULTS.reconnectInitialMs,
      reconnectMaxMs: options.reconnectMaxMs ?? DEFAULTS.reconnectMaxMs,
      closeTimeoutMs: options.closeTimeoutMs ?? DEFAULTS.closeTimeoutMs,
      persistent: options.persistent ?? DEFAULTS.persistent,
    };
    this.log = options.log;
  }

  start(): Promise<void> {
    return (this.started ??= this.connect());
  }

  close(): Promise<void> {
    return (this.closed ??= this.shutdown());
  }

  tryPublish(routingKey: string, body: Buffer, headers: Record<string, unknown>): boolean {
    if (this.unsent.length > 0 || !this.isWritable()) return false;
    const events = Number(headers[EVENTS_HEADER] ?? 0);
    const outgoing: Outgoing = { routingKey, body, headers, events: events >= 0 ? events : 0 };
    if (!this.send(outgoing)) return false;
    this.stats.inFlight++;
    return true;
  }

  /** Hands one batch to the channel; false (nothing sent) when the channel is closing. */
  private send(outgoing: Outgoing): boolean {
    const channel = this.channel;
    if (channel === undefined) return false;
    let flushed: boolean;
    try {
      flushed = channel.publish(
        this.options.names.exchange,
        outgoing.routingKey,
        outgoing.body,
        {
          persistent: this.options.persistent,
          mandatory: true,
          contentType: 'application/msgpack',
          headers: outgoing.headers,
        },
        (error: unknown) => this.onConfirm(outgoing, error),
      );
    } catch (error) {
      // The channel closed under us; its 'close' event is on the way.
      this.log.debug({ err: error }, 'publish on a closing channel refused');
      return false;
    }
    this.unconfirmed.add(outgoing);
    this.stats.published++;
    if (!flushed) this.draining = true;
    return true;
  }

  whenWritable(): Promise<void> {
    if (this.closing) return Promise.reject(closedError());
    if (this.isWritable()) return Promise.resolve();
    if (this.writable === undefined) {
      // One shared waiter however many callers wait: nothing here grows with the callers.
      this.writable = Promise.withResolvers<void>();
      // A caller that stopped waiting must not turn close() into an unhandled rejection.
      this.writable.promise.catch(() => undefined);
    }
    return this.writable.promise;
  }

  private isWritable(): boolean {
    return (
      this.channel !== undefined &&
      this.unsent.length === 0 &&
      !this.closing &&
      !this.draining &&
      !this.blocked &&
      this.stats.inFlight < this.options.maxInFlight
    );
  }

  private notifyWritable(): void {
    if (this.writable === undefined || !this.isWritable()) return;
    this.writable.resolve();
    this.writable = undefined;
  }

  private onConfirm(outgoing: Outgoing, error: unknown): void {
    // A batch resent after a reconnect may still hear about its first copy: only its latest counts.
    if (!this.unconfirmed.delete(outgoing)) return;
    if (error === null || error === undefined) {
      this.stats.confirmed++;
      this.stats.inFlight--;
    } else if (error instanceof Error && error.message === 'message nacked') {
      this.stats.inFlight--;
      this.onNack(outgoing);
    } else {
      // amqplib reports 'channel closed' for every message unconfirmed when its channel went:
      // the broker may or may not have it, so it goes out again once reconnected.
      this.unsent.push(outgoing);
      return;
    }
    this.notifyWritable();
    this.notifySettled();
  }

  /** Publishes again, first thing on a new channel, what the last one left unconfirmed. */
  private resend(): void {
    const batches = this.unsent;
    this.unsent = [];
    for (let n = 0; n < batches.length; n++) {
      if (!this.send(batches[n]!)) {
        this.unsent = batches.slice(n).concat(this.unsent);
        return;
      }
      this.stats.resent++;
    }
    if (batches.length > 0) {
      this.log.info({ resent: batches.length }, 'published unconfirmed batches again');
    }
  }

  private notifySettled(): void {
    if (this.settled !== undefined && this.stats.inFlight === 0) this.settled.resolve();
  }

  private onNack(outgoing: Outgoing): void {
    this.stats.nacked++;
    this.stats.nackedEvents += outgoing.events;
    const now = performance.now();
    if (now - this.nackLoggedAtMs < NACK_LOG_INTERVAL_MS) return;
    this.nackLoggedAtMs = now;
    this.log.warn({ nacked: this.stats.nacked }, 'broker refused published batches (counted)');
  }

  private async connect(): Promise<void> {
    if (this.closing) throw closedError();
    const { url, log, reconnectInitialMs, reconnectMaxMs } = this.options;
    const connection = await connectRecovering({
      url,
      log,
      reconnectInitialMs,
      reconnectMaxMs,
      role: 'publisher',
      setup: (model) => this.setup(model),
      onConnect: (again) => this.onConnect(again),
      onDisconnect: () => {
        this.channel = undefined;
        this.stats.connected = false;
      },
    });
    this.connection = connection;
    if (this.closing) await connection.close();
    connection.model.on('blocked', (reason: string) => this.onBlocked(true, reason));
    connection.model.on('unblocked', () => this.onBlocked(false));
    await connection.ready;
  }

  /** Runs on every (re)connection, before it counts: a fresh confirm channel and the exchange. */
  private async setup(model: ChannelModel): Promise<void> {
    const channel = await model.createConfirmChannel();
    channel.on('error', (error: Error) => this.log.warn({ err: error }, 'publisher channel error'));
    channel.on('return', (message: { properties: { headers?: Record<string, unknown> } }) => {
      this.stats.unroutable++;
      this.stats.unroutableEvents += Number(message.properties.headers?.[EVENTS_HEADER] ?? 0);
      const now = performance.now();
      if (now - this.returnLoggedAtMs < NACK_LOG_INTERVAL_MS) return;
      this.returnLoggedAtMs = now;
      this.log.warn(
        { unroutable: this.stats.unroutable },
        'batches reached no queue: declare a consumer group (counted)',
      );
    });
    channel.on('drain', () => {
      if (channel !== this.channel) return;
      this.draining = false;
      this.notifyWritable();
    });
    channel.on('close', () => {
      if (channel !== this.channel) return;
      this.channel = undefined;
      this.stats.connected = false;
      if (!this.closing) this.connection?.renew(model, 'publisher channel closed');
    });
    await assertEventExchange(channel, this.options.names);
    this.ready = channel;
  }

  private onConnect(again: boolean): void {
    this.channel = this.ready;
    this.ready = undefined;
    if (again) this.stats.reconnects++;
    this.draining = false;
    this.stats.connected = true;
    this.resend();
    this.notifyWritable();
  }

  private onBlocked(blocked: boolean, reason?: string): void {
    this.blocked = blocked;
    if (blocked) this.log.warn({ reason }, 'broker blocks publishers');
    else {
      this.log.info('broker unblocked publishers');
      this.notifyWritable();
    }
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    this.writable?.reject(closedError());
    this.writable = undefined;
    if (this.stats.inFlight > 0) {
      // Confirms (and resends, should the connection come back meanwhile) until the deadline.
      this.settled = Promise.withResolvers<void>();
      const settled = await settlesWithin(this.settled.promise, this.options.closeTimeoutMs);
      if (!settled) this.log.warn({ inFlight: this.stats.inFlight }, 'closing with unconfirmed');
    }
    try {
      await this.connection?.close();
    } catch (error) {
      this.log.warn({ err: error }, 'publisher connection did not close cleanly');
    }
    this.channel = undefined;
    this.stats.connected = false;
    this.countLost();
    this.log.info({ ...this.stats }, 'publisher closed');
  }

  /** Whatever never got its confirm is lost now: counted in batches and events. */
  private countLost(): void {
    const lost = [...this.unconfirmed, ...this.unsent];
    this.unconfirmed.clear();
    this.unsent = [];
    for (const outgoing of lost) {
      this.stats.lost++;
      this.stats.lostEvents += outgoing.events;
    }
    this.stats.inFlight = 0;
    if (lost.length > 0) {
      this.log.warn(
        { lost: lost.length, lostEvents: this.stats.lostEvents },
        'publisher closed before the broker confirmed these batches (counted lost)',
      );
    }
  }
}

/** A batch handed to the publisher, kept until the broker confirms it. */
interface Outgoing {
  routingKey: string;
  body: Buffer;
  headers: Record<string, unknown>;
  /** Its `x-openbell-events` header. */
  events: number;
}

function closedError(): ServiceError {
  return new ServiceError('rabbitmq', 'the publisher is closed');
}

/** Resolves true when `promise` settles (either way) within `ms`, false on timeout. */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const timer = new AbortController();
  const settled = promise.then(
    () => true,
    // A nack or a closed channel rejects; the per-message callbacks have counted it.
    () => true,
  );
  try {
    return await Promise.race([settled, sleep(ms, false, { signal: timer.signal })]);
  } finally {
    timer.abort();
  }
}
