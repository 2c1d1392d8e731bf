import type { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { nextBackoffMs } from './backoff.ts';
import { ServiceError } from './errors.ts';
import type { Names } from './names.ts';
import {
  assertTopology,
  connectRecovering,
  readDeadLetter,
  type RecoveringConnection,
  type TopologyOptions,
} from './topology.ts';

/** What a {@link BatchConsumerOptions.handle} call learns about its message besides the body. */
export interface DeliveryInfo {
  /** The broker delivered this message before (to this or another consumer) without an ack. */
  redelivered: boolean;
  headers: Record<string, unknown>;
  routingKey: string;
}

/** Options of {@link createBatchConsumer}. */
export interface BatchConsumerOptions {
  /** AMQP URL of the broker, vhost included. */
  url: string;
  names: Names;
  /** Consumer group: every consumer of a group shares its queue, each message goes to one. */
  group: string;
  topology: TopologyOptions;
  log: Logger;
  /** Unacknowledged messages the broker sends ahead; bounds what this process holds. @default 64 */
  prefetch?: number;
  /** Handler calls in flight at once. @default 4 */
  concurrency?: number;
  /** First delay before a failed handler call is retried; doubles, with jitter. @default 100 */
  retryInitialMs?: number;
  /** Longest delay between two retries of a handler call. @default 5000 */
  retryMaxMs?: number;
  /** First reconnect delay; doubles, with jitter, after each failed attempt. @default 100 */
  reconnectInitialMs?: number;
  /** Longest reconnect delay. @default 5000 */
  reconnectMaxMs?: number;
  /** Longest {@link BatchConsumer.close} waits for running handler calls. @default 10000 */
  closeTimeoutMs?: number;
  /**
   * Handles one batch; the message is acked once it resolves. A rejection means "try again":
   * the same message is retried with backoff, unacked, until it succeeds or the consumer closes.
   * Bad input must therefore be counted and dropped by resolving normally.
   */
  handle(body: Buffer, info: DeliveryInfo): Promise<void>;
  /**
   * Reports a batch this group lost to the broker, once per dead-lettered message: `reason` is
   * RabbitMQ's (`expired`, `maxlen`, `rejected`), `events` the batch's `x-openbell-events` count,
   * `body` the batch. The dead letter is acked once the returned promise resolves; a rejection
   * gives it back to the dead-letter queue, to be reported again after a retry delay.
   */
  onDeadLetter?(reason: string, events: number, body: Buffer): Promise<void> | void;
}

/** Live counters of a {@link BatchConsumer}. */
export interface BatchConsumerStats {
  /** Messages delivered from the group's queue. */
  consumed: number;
  acked: number;
  /** Failed handler calls that were retried. */
  retries: number;
  /** Deliveries the broker flagged as redelivered. */
  redelivered: number;
  /** Events (`x-openbell-events` header) dead-lettered from the group's queue, by reason. */
  deadLettered: Record<string, number>;
  /** Deliveries held and not yet acked: running, retrying or waiting for a handler slot. */
  inFlight: number;
  /** Connections re-established after a loss. */
  reconnects: number;
  connected: boolean;
  /**
   * Messages ready in the group's queue (`events`) and its dead-letter queue (`dead`), as the
   * broker reported at the last poll (every {@link QUEUE_DEPTH_POLL_MS}); absent before the first.
   */
  queueDepth: { events?: QueueDepth; dead?: QueueDepth };
}

/** A queue's depth as the broker reported it. */
export interface QueueDepth {
  queue: string;
  messages: number;
}

/** How often the consumer asks the broker for its queues' depths. */
export const QUEUE_DEPTH_POLL_MS = 1000;

/**
 * Consumes a consumer group's queue with manual acks and bounded concurrency, and its dead-letter
 * queue to report what the broker expired or dropped. Reconnects (re-asserting the topology) on
 * connection loss; messages unacked then are redelivered by the broker, so handlers must be
 * idempotent (batches carry ids for that).
 */
export interface BatchConsumer {
  /**
   * Connects (retrying with backoff until close), asserts the topology and starts consuming;
   * rejects with a ConfigError when the group's queues exist with other arguments, or a
   * ServiceError when closed first. Idempotent.
   */
  start(): Promise<void>;
  /**
   * Stops intake, waits (up to `closeTimeoutMs`) for running handler calls and acks those that
   * succeed, gives every other held message back to the broker, and closes; idempotent.
   */
  close(): Promise<void>;
  readonly stats: Readonly<BatchConsumerStats>;
}

const DEFAULTS = {
  prefetch: 64,
  concurrency: 4,
  retryInitialMs: 100,
  retryMaxMs: 5000,
  reconnectInitialMs: 100,
  reconnectMaxMs: 5000,
  closeTimeoutMs: 10_000,
} satisfies Partial<BatchConsumerOptions>;

/** One channel's life: deliveries can only be acked on the channel that delivered them. */
interface Session {
  channel: Channel;
  model: ChannelModel;
  open: boolean;
  /** Aborted when the channel closes: retries of its deliveries stop (the broker redelivers). */
  lost: AbortController;
  consumerTags: string[];
  depthTimer?: NodeJS.Timeout;
  depthChannel?: Channel | undefined;
}

interface Delivery {
  message: ConsumeMessage;
  session: Session;
}

/** Creates a {@link BatchConsumer}; nothing connects before `start()`. */
export function createBatchConsumer(options: BatchConsumerOptions): BatchConsumer {
  return new AmqpBatchConsumer(options);
}

class AmqpBatchConsumer implements BatchConsumer {
  readonly stats: BatchConsumerStats = {
    consumed: 0,
    acked: 0,
    retries: 0,
    redelivered: 0,
    deadLettered: {},
    inFlight: 0,
    reconnects: 0,
    connected: false,
    queueDepth: {},
  };
  /** The caller's options object, kept as is so `handle` is called with its `this`. */
  private readonly input: BatchConsumerOptions;
  private readonly options: Required<Omit<BatchConsumerOptions, 'onDeadLetter'>>;
  private readonly log: Logger;
  private readonly queue: string;
  private connection: RecoveringConnection | undefined;
  private session: Session | undefined;
  /**
   * Deliveries waiting for a handler slot. Bounded by `prefetch`: the broker sends no more
   * unacked messages than that, so it cannot overflow.
   */
  private readonly waiting: Delivery[] = [];
  private active = 0;
  private idle: PromiseWithResolvers<void> | undefined;
  private failing = false;
  private closing = false;
  private readonly closeSignal = new AbortController();
  private started: Promise<void> | undefined;
  private closed: Promise<void> | undefined;

  constructor(options: BatchConsumerOptions) {
    this.input = options;
    this.options = {
      ...options,
      prefetch: options.prefetch ?? DEFAULTS.prefetch,
      concurrency: options.concurrency ?? DEFAULTS.concurrency,
      retryInitialMs: options.retryInitialMs ?? DEFAULTS.retryInitialMs,
      retryMaxMs: options.retryMaxMs ?? DEFAULTS.retryMaxMs,
      reconnectInitialMs: options.reconnectInitialMs ?? DEFAULTS.reconnectInitialMs,
      reconnectMaxMs: options.reconnectMaxMs ?? DEFAULTS.reconnectMaxMs,
      closeTimeoutMs: options.closeTimeoutMs ?? DEFAULTS.closeTimeoutMs,
    };
    this.log = options.log.child({ group: options.group });
    this.queue = options.names.queue(options.group);
  }

  start(): Promise<void> {
    return (this.started ??= this.connect());
  }

  close(): Promise<void> {
    return (this.closed ??= this.shutdown());
  }

  private async connect(): Promise<void> {
    if (this.closing) throw closedError();
    const { url, reconnectInitialMs, reconnectMaxMs } = this.options;
    const connection = await connectRecovering({
      url,
      log: this.log,
      reconnectInitialMs,
      reconnectMaxMs,
      role: 'consumer',
      setup: (model) => this.setup(model),
      onConnect: (again) => {
        if (again) this.stats.reconnects++;
        this.stats.connected = true;
      },
      onDisconnect: () => (this.stats.connected = false),
    });
    this.connection = connection;
    if (this.closing) await connection.close();
    await connection.ready;
  }

  /** Runs on every (re)connection: a fresh channel, the topology, and both consumers. */
  private async setup(model: ChannelModel): Promise<void> {
    const { names, group, topology, prefetch } = this.options;
    const channel = await model.createChannel();
    const session: Session = {
      channel,
      model,
      open: true,
      lost: new AbortController(),
      consumerTags: [],
    };
    channel.on('error', (error: Error) => this.log.warn({ err: error }, 'consumer channel error'));
    channel.on('close', () => this.onSessionClose(session));
    await channel.prefetch(prefetch);
    const { deadLetterQueue } = await assertTopology(channel, names, group, topology);
    const main = await channel.consume(this.queue, (m) => this.onDelivery(session, m));
    const dead = await channel.consume(deadLetterQueue, (m) => this.onDeadLetter(session, m));
    session.consumerTags.push(main.consumerTag, dead.consumerTag);
    this.session = session;
    this.scheduleDepthPoll(session, deadLetterQueue);
  }

  /** The next depth poll, a second after the last one ended: polls never pile up. */
  private scheduleDepthPoll(session: Session, deadLetterQueue: string): void {
    session.depthTimer = setTimeout(() => {
      void this.pollDepth(session, deadLetterQueue).finally(() => {
        if (session.open) this.scheduleDepthPoll(session, deadLetterQueue);
      });
    }, QUEUE_DEPTH_POLL_MS).unref();
  }

  /**
   * Reads both queues' depths (a passive declare each) on a channel of their own: a queue
   * deleted under us closes that channel, never the one holding unacked deliveries. A failure
   * leaves the depth as last read and opens a new channel at the next poll.
   */
  private async pollDepth(session: Session, deadLetterQueue: string): Promise<void> {
    try {
      session.depthChannel ??= await this.openDepthChannel(session);
      const events = await session.depthChannel.checkQueue(this.queue);
      const dead = await session.depthChannel.checkQueue(deadLetterQueue);
      this.stats.queueDepth = {
        events: { queue: this.queue, messages: events.messageCount },
        dead: { queue: deadLetterQueue, messages: dead.messageCount },
      };
    } catch (error) {
      this.log.debug({ err: error }, 'queue depth poll failed');
    }
  }

  private async openDepthChannel(session: Session): Promise<Channel> {
    const channel = await session.model.createChannel();
    channel.on('error', (error: Error) => this.log.debug({ err: error }, 'depth channel error'));
    channel.on('close', () => {
      if (session.depthChannel === channel) session.depthChannel = undefined;
    });
    return channel;
  }

  private onSessionClose(session: Session): void {
    session.open = false;
    clearTimeout(session.depthTimer);
    session.depthChannel?.close().catch(() => undefined);
    session.lost.abort();
    // The channel gave its unacked deliveries back to the queue; forget the waiting ones.
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      if (this.waiting[i]!.session === session) {
        this.waiting.splice(i, 1);
        this.stats.inFlight--;
      }
    }
    if (this.session !== session) return;
    this.session = undefined;
    this.stats.connected = false;
    if (!this.closing) this.connection?.renew(session.model, 'consumer channel closed');
  }

  private onDelivery(session: Session, message: ConsumeMessage | null): void {
    if (message === null) return this.onCancelled(session);
    this.stats.consumed++;
    this.stats.inFlight++;
    if (message.fields.redelivered) this.stats.redelivered++;
    const delivery = { message, session };
    if (this.closing) this.settle(delivery, false);
    else if (this.active < this.options.concurrency) void this.process(delivery);
    else this.waiting.push(delivery);
  }

  /** The broker cancelled a consumer (its queue was deleted): start over on a new connection. */
  private onCancelled(session: Session): void {
    if (this.closing || !session.open) return;
    this.log.warn({ queue: this.queue }, 'broker cancelled the consumer');
    session.channel.close().catch((error: unknown) => {
      this.log.debug({ err: error }, 'closing a cancelled channel failed');
    });
  }

  private async process(delivery: Delivery): Promise<void> {
    this.active++;
    try {
      this.settle(delivery, await this.handleWithRetry(delivery));
    } finally {
      this.active--;
      if (this.active === 0) this.idle?.resolve();
      while (!this.closing && this.active < this.options.concurrency && this.waiting.length > 0) {
        void this.process(this.waiting.shift()!);
      }
    }
  }

  /** Calls the handler until it succeeds (true), or the consumer closes or loses the channel. */
  private async handleWithRetry({ message, session }: Delivery): Promise<boolean> {
    const info: DeliveryInfo = {
      redelivered: message.fields.redelivered,
      headers: message.properties.headers ?? {},
      routingKey: message.fields.routingKey,
    };
    let stop: AbortSignal | undefined;
    for (let attempt = 1; ; attempt++) {
      try {
        await this.input.handle(message.content, info);
        if (this.failing) this.onRecovered();
        return true;
      } catch (error) {
        stop ??= AbortSignal.any([this.closeSignal.signal, session.lost.signal]);
        if (stop.aborted) return false;
        this.stats.retries++;
        this.onFailed(error);
        const { retryInitialMs, retryMaxMs } = this.options;
        const delayMs = nextBackoffMs(attempt - 1, retryInitialMs, retryMaxMs);
        // An abort (close, channel lost) ends the wait early; it is checked just below.
        await sleep(delayMs, undefined, { signal: stop }).catch(() => undefined);
        if (stop.aborted) return false;
      }
    }
  }

  private onFailed(error: unknown): void {
    if (this.failing) return;
    this.failing = true;
    this.log.warn({ err: error }, 'batch handler failed; retrying with backoff, messages unacked');
  }

  private onRecovered(): void {
    this.failing = false;
    this.log.info({ retries: this.stats.retries }, 'batch handler recovered');
  }

  /** Acks a handled delivery, or gives it back to the queue at once (it is redelivered). */
  private settle({ message, session }: Delivery, handled: boolean): void {
    this.stats.inFlight--;
    // A closed channel has already given its deliveries back to the broker.
    if (!session.open) return;
    try {
      if (handled) session.channel.ack(message);
      else session.channel.nack(message, false, true);
    } catch (error) {
      // The channel closed between the check and the call; the broker redelivers the message.
      this.log.debug({ err: error }, 'settling a delivery on a closed channel');
      return;
    }
    if (handled) this.stats.acked++;
  }

  private onDeadLetter(session: Session, message: ConsumeMessage | null): void {
    if (message === null) return this.onCancelled(session);
    void this.reportDeadLetter(session, message);
  }

  /**
   * Counts a dead letter that died in this group's queue and hands it to `onDeadLetter`, then acks
   * it. The dead-letter exchange is a fanout shared by every group of the namespace: what died in
   * another group's queue is acked uncounted.
   */
  private async reportDeadLetter(session: Session, message: ConsumeMessage): Promise<void> {
    const dead = readDeadLetter(message.properties.headers);
    if (dead !== undefined && dead.queue === this.queue) {
      const { reason, events } = dead;
      try {
        await this.input.onDeadLetter?.(reason, events, message.content);
      } catch (error) {
        this.stats.retries++;
        this.log.warn({ err: error, reason }, 'counting a dead letter failed; it is given back');
        // Given back after a pause, so a failing report does not spin on the same message.
        const delayMs = this.options.retryMaxMs;
        setTimeout(() => this.giveBack(session, message), delayMs).unref();
        return;
      }
      this.stats.deadLettered[reason] = (this.stats.deadLettered[reason] ?? 0) + events;
    }
    try {
      session.channel.ack(message);
    } catch (error) {
      // The channel closed meanwhile; the dead letter is redelivered and counted then.
      this.log.debug({ err: error }, 'acking a dead letter on a closed channel');
    }
  }

  private giveBack(session: Session, message: ConsumeMessage): void {
    if (!session.open) return;
    try {
      session.channel.nack(message, false, true);
    } catch (error) {
      this.log.debug({ err: error }, 'giving back a dead letter on a closed channel');
    }
  }

  private async shutdown(): Promise<void> {
    this.closing = true;
    const session = this.session;
    for (const tag of session?.open === true ? session.consumerTags : []) {
      await session!.channel.cancel(tag).catch((error: unknown) => {
        this.log.debug({ err: error }, 'cancelling a consumer failed (channel closing)');
      });
    }
    // After the cancel, so deliveries given back to the queue are not delivered here again.
    this.closeSignal.abort();
    for (const delivery of this.waiting.splice(0)) this.settle(delivery, false);
    if (!(await this.waitIdle(this.options.closeTimeoutMs))) {
      this.log.warn(
        { running: this.active },
        'close deadline passed; those batches are redelivered',
      );
    }
    try {
      // Channel first: amqplib sends each channel's frames through its own buffer, so closing
      // just the connection could overtake the acks just sent; a channel close comes after them.
      if (this.session?.open === true) await this.session.channel.close();
      await this.connection?.close();
    } catch (error) {
      this.log.warn({ err: error }, 'consumer connection did not close cleanly');
    }
    this.stats.connected = false;
    const { consumed, acked, retries, deadLettered } = this.stats;
    this.log.info({ consumed, acked, retries, deadLettered }, 'consumer closed');
  }

  /** Resolves true once no handler call runs, or false after `ms`. */
  private async waitIdle(ms: number): Promise<boolean> {
    if (this.active === 0) return true;
    this.idle ??= Promise.withResolvers<void>();
    const timer = new AbortController();
    try {
      return await Promise.race([
        this.idle.promise.then(() => true),
        sleep(ms, false, { signal: timer.signal }),
      ]);
    } finally {
      timer.abort();
    }
  }
}

function closedError(): ServiceError {
  return new ServiceError('rabbitmq', 'the consumer is closed');
}
