import amqp from 'amqplib';
import type { Channel, ChannelModel, RecoveringChannelModel } from 'amqplib';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { ConfigError, ServiceError } from './errors.ts';
import type { Names } from './names.ts';
import { redactUrl } from './redact.ts';

/** AMQP header carrying a batch's event count, so what the broker drops is counted in events. */
export const EVENTS_HEADER = 'x-openbell-events';

/** Shape of one consumer group's queues; every process of the group must pass the same values. */
export interface TopologyOptions {
  /** Batches older than this expire from the group's queue (and are dead-lettered as `expired`). */
  queueTtlMs: number;
  /** Batches the group's queue holds before dropping its oldest (dead-lettered as `maxlen`). */
  queueMaxLength: number;
  /** Quorum queues, for a RabbitMQ cluster. @default false */
  quorum?: boolean;
  /** Routing keys (event types, `#` for all) the group's queue is bound with. @default ['#'] */
  bindings?: readonly string[];
  /** Messages the group's dead-letter queue holds before dropping its oldest. @default 100000 */
  deadLetterMaxLength?: number;
}

/** The names {@link assertTopology} declared. */
export interface Topology {
  exchange: string;
  queue: string;
  deadLetterExchange: string;
  deadLetterQueue: string;
}

const DEFAULT_BINDINGS: readonly string[] = ['#'];
const DEFAULT_DEAD_LETTER_MAX_LENGTH = 100_000;
const DEAD_LETTER_MAX_BYTES = 64 * 1024 * 1024;
/** AMQP reply code of a declaration whose arguments differ from the existing entity's. */
const PRECONDITION_FAILED = 406;

/** The dead-letter exchange every queue of the namespace sends expired and dropped batches to. */
export function deadLetterExchangeName(names: Names): string {
  return `${names.exchange}.dead`;
}

/**
 * Declares the durable topic exchange event batches are published to. Idempotent; throws
 * {@link ConfigError} (and the channel is closed) when it exists with another type.
 */
export async function assertEventExchange(channel: Channel, names: Names): Promise<string> {
  await declare(channel, `exchange "${names.exchange}"`, () =>
    channel.assertExchange(names.exchange, 'topic', { durable: true }),
  );
  return names.exchange;
}

/**
 * Declares the exchange, the group's queue (TTL, max length with drop-head, dead-lettering) and
 * its bindings, and the group's bounded dead-letter queue. Idempotent: whichever process starts
 * first declares, the others' identical declarations succeed. Existing entities with different
 * arguments make RabbitMQ close `channel`; that becomes a {@link ConfigError} naming the entity.
 * Bindings are only added: a routing key dropped from `bindings` stays bound until unbound by hand.
 */
export async function assertTopology(
  channel: Channel,
  names: Names,
  group: string,
  options: TopologyOptions,
): Promise<Topology> {
  const quorum = options.quorum ?? false;
  const typeArgs = quorum ? { 'x-queue-type': 'quorum' } : {};
  const exchange = await assertEventExchange(channel, names);
  const deadLetterExchange = deadLetterExchangeName(names);
  const queue = names.queue(group);
  const deadLetterQueue = names.queue(`${group}.dead`);
  await declare(channel, `exchange "${deadLetterExchange}"`, () =>
    channel.assertExchange(deadLetterExchange, 'fanout', { durable: true }),
  );
  await declare(channel, `queue "${queue}"`, () =>
    channel.assertQueue(queue, {
      durable: true,
      arguments: {
        'x-message-ttl': options.queueTtlMs,
        'x-max-length': options.queueMaxLength,
        'x-overflow': 'drop-head',
        'x-dead-letter-exchange': deadLetterExchange,
        ...typeArgs,
      },
    }),
  );
  for (const key of options.bindings ?? DEFAULT_BINDINGS) {
    await channel.bindQueue(queue, exchange, key);
  }
  await declare(channel, `queue "${deadLetterQueue}"`, () =>
    channel.assertQueue(deadLetterQueue, {
      durable: true,
      arguments: {
        'x-max-length': options.deadLetterMaxLength ?? DEFAULT_DEAD_LETTER_MAX_LENGTH,
        // Dead letters keep their bodies; only their headers are counted, so bound the bytes too.
        'x-max-length-bytes': DEAD_LETTER_MAX_BYTES,
        'x-overflow': 'drop-head',
        ...typeArgs,
      },
    }),
  );
  await channel.bindQueue(deadLetterQueue, deadLetterExchange, '');
  return { exchange, queue, deadLetterExchange, deadLetterQueue };
}

/** Why and where a message was dead-lettered, as {@link readDeadLetter} reads it. */
export interface DeadLetter {
  /** RabbitMQ's reason: `expired`, `maxlen`, `rejected` or `delivery_limit`. */
  reason: string;
  /** The queue it died in. */
  queue: string;
  /** Its {@link EVENTS_HEADER} count; 0 when missing or malformed. */
  events: number;
}

/**
 * Reads a dead letter's newest `x-death` entry (RabbitMQ puts the latest first) and its event
 * count; undefined when the message carries no `x-death`.
 */
export function readDeadLetter(
  headers: Record<string, unknown> | undefined,
): DeadLetter | undefined {
  const deaths = headers?.['x-death'];
  const death: unknown = Array.isArray(deaths) ? deaths[0] : undefined;
  if (typeof death !== 'object' || death === null) return undefined;
  const { reason, queue } = death as { reason?: unknown; queue?: unknown };
  const events = headers?.[EVENTS_HEADER];
  return {
    reason: String(reason),
    queue: String(queue),
    events: typeof events === 'number' && Number.isFinite(events) && events >= 0 ? events : 0,
  };
}

/** Runs one declaration, turning PRECONDITION_FAILED into a {@link ConfigError} about `entity`. */
async function declare(
  channel: Channel,
  entity: string,
  run: () => Promise<unknown>,
): Promise<void> {
  // The broker closes the channel on a failed declaration and amqplib reports it twice: as this
  // call's rejection and as an 'error' event, which would throw if the caller had no listener.
  const onError = (): void => undefined;
  channel.on('error', onError);
  try {
    await run();
  } catch (error) {
    if ((error as { code?: unknown }).code !== PRECONDITION_FAILED) throw error;
    throw new ConfigError(
      'topology',
      `${entity} already exists with different arguments; delete it or declare it with the ` +
        `same options (broker: ${brokerDetail(error)})`,
      { cause: error },
    );
  } finally {
    channel.off('error', onError);
  }
}

function brokerDetail(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return /PRECONDITION_FAILED - (.*?)"?$/.exec(message)?.[1] ?? message;
}

/** Options of {@link connectRecovering}. */
export interface RecoveringConnectionOptions {
  /** AMQP URL of the broker, vhost included. */
  url: string;
  log: Logger;
  /** Who connects, for log messages (e.g. `publisher`). */
  role: string;
  /** First reconnect delay; it doubles, with jitter, after each failed attempt. */
  reconnectInitialMs: number;
  /** Longest reconnect delay. */
  reconnectMaxMs: number;
  /**
   * Prepares each fresh connection (channels, topology, consumers) before it counts as
   * connected. A {@link ConfigError} before the first success is fatal: nothing retries.
   */
  setup(connection: ChannelModel): Promise<void>;
  /** Called once a connection is set up; `again` after a loss. */
  onConnect(again: boolean): void;
  /** Called when the connection is lost; recovery is already scheduled. */
  onDisconnect(): void;
}

/** A connection that reconnects with jittered backoff until closed, re-running its setup. */
export interface RecoveringConnection {
  /** The amqplib model, for events such as `blocked`. */
  readonly model: RecoveringChannelModel;
  /** Resolves once first connected; rejects with a setup's ConfigError, or when closed first. */
  readonly ready: Promise<void>;
  /**
   * Closes `connection` (soon, so one that is closing anyway finishes first) so recovery makes a
   * fresh one: for a channel the broker closed, or consumers it cancelled, on a live connection.
   */
  renew(connection: ChannelModel, why: string): void;
  /**
   * Stops recovery and closes the connection; a broker that does not answer the close within
   * `timeoutMs` (frozen, or a half-open socket) has the socket destroyed instead.
   */
  close(timeoutMs?: number): Promise<void>;
}

/** How long {@link RecoveringConnection.close} waits for the broker's close-ok by default. */
const CLOSE_TIMEOUT_MS = 5000;

/** Opens a {@link RecoveringConnection} (amqplib's own recovery); returns before it connects. */
export async function connectRecovering(
  options: RecoveringConnectionOptions,
): Promise<RecoveringConnection> {
  const { url, log, role } = options;
  const state: RecoveryState = { fatal: undefined, connected: false, stopped: false };
  const dead = new WeakSet<ChannelModel>();
  let current: ChannelModel | undefined;
  const model: RecoveringChannelModel = await amqp.connect(url, {
    recovery: {
      initialDelay: options.reconnectInitialMs,
      maxDelay: options.reconnectMaxMs,
      jitter: 0.5,
      waitForConnect: false,
      setup: async (connection: ChannelModel) => {
        current = connection;
        connection.on('close', () => dead.add(connection));
        // Errors during setup surface as its rejection; after it, as 'disconnect'.
        connection.on('error', () => undefined);
        try {
          await options.setup(connection);
        } catch (error) {
          if (error instanceof ConfigError && !state.connected) {
            state.fatal = error;
            void model.close();
          }
          throw error;
        }
      },
    },
  });
  watch(model, options, state);
  const ready = model.waitForConnect().then(
    () => undefined,
    (error: unknown) => {
      throw (
        state.fatal ??
        new ServiceError('rabbitmq', `${role} closed before connecting`, { cause: error })
      );
    },
  );
  // The owner awaits `ready` in start(); this keeps a close() before that from going unhandled.
  ready.catch(() => undefined);
  const renew = (connection: ChannelModel, why: string): void => {
    setImmediate(() => {
      if (state.stopped || dead.has(connection)) return;
      log.warn(`${role}: ${why}; reconnecting`);
      connection.close().catch((error: unknown) => {
        log.debug({ err: error }, `${role}: closing a dead channel's connection failed`);
      });
    });
  };
  const close = async (timeoutMs = CLOSE_TIMEOUT_MS): Promise<void> => {
    state.stopped = true;
    const timer = new AbortController();
    const closed = model.close().then(() => true);
    const timedOut = sleep(timeoutMs, false, { signal: timer.signal }).catch(() => false);
    const inTime = await Promise.race([closed, timedOut]).finally(() => timer.abort());
    if (inTime || current === undefined) return;
    log.warn({ timeoutMs }, `${role}: the broker did not answer the close; dropping the socket`);
    // amqplib's close never settles once its socket is gone: nothing waits for it any more.
    closed.catch(() => undefined);
    (current as unknown as { connection: { stream: Socket } }).connection.stream.destroy();
  };
  return { model, ready, renew, close };
}

interface RecoveryState {
  /** A setup's ConfigError before the first connection: recovery stops, `ready` rejects with it. */
  fatal: ConfigError | undefined;
  connected: boolean;
  stopped: boolean;
}

/** Logs the connection's life at its boundaries and reports it to the owner. */
function watch(
  model: RecoveringChannelModel,
  options: RecoveringConnectionOptions,
  state: RecoveryState,
): void {
  const { log, role } = options;
  const url = redactUrl(options.url);
  model.on('connect', () => {
    log.info({ url }, `${role} connected`);
    options.onConnect(state.connected);
    state.connected = true;
  });
  model.on('disconnect', (error: Error) => {
    log.warn({ err: error }, `${role} disconnected; reconnecting`);
    options.onDisconnect();
  });
  model.on('connect-failed', (error: Error) => {
    if (error !== state.fatal) log.warn({ err: error, url }, `${role} could not connect; retrying`);
  });
  // Connection errors are followed by 'disconnect', which is where they are logged.
  model.on('error', () => undefined);
}

/**
 * Deletes what {@link assertTopology} declared for `groups` of a namespace: their queues and
 * dead-letter queues, and the namespace's two exchanges. For labs and benchmarks that must leave
 * nothing behind; a missing piece is not an error.
 */
export async function deleteTopology(
  channel: Channel,
  names: Names,
  groups: readonly string[],
): Promise<void> {
  for (const group of groups) {
    await channel.deleteQueue(names.queue(group));
    await channel.deleteQueue(names.queue(`${group}.dead`));
  }
  await channel.deleteExchange(names.exchange);
  await channel.deleteExchange(deadLetterExchangeName(names));
}
