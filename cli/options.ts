import { InvalidArgumentError, Option } from 'commander';
import {
  DEFAULTS,
  parseBoardOptions,
  parseConnectionOptions,
  type BoardOptions,
  type ConnectionOptions,
} from '../core/index.ts';

/** Parses a whole number for an option, with the option's name in the error. */
export function integer(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n))
    throw new InvalidArgumentError(`expected a whole number, got ${JSON.stringify(value)}`);
  return n;
}

/** The connection options every role shares, each with its environment variable twin. */
export function connectionOptions(): Option[] {
  return [
    new Option('--redis-url <url>', 'Redis URL')
      .env('REDIS_URL')
      .default(DEFAULTS.connection.redisUrl),
    new Option('--amqp-url <url>', 'RabbitMQ URL')
      .env('AMQP_URL')
      .default(DEFAULTS.connection.amqpUrl),
    new Option('--namespace <name>', 'prefix of every Redis key, queue and exchange')
      .env('OPENBELL_NAMESPACE')
      .default(DEFAULTS.connection.namespace),
  ];
}

/** Options of the analyzers' queue and board computation, with env twins. */
export function analyzerOptions(): Option[] {
  const t = DEFAULTS.transport;
  const b = DEFAULTS.board;
  return [
    new Option('--group <name>', 'consumer group: analyzers of one group share one queue')
      .env('OPENBELL_GROUP')
      .default('analyzers'),
    new Option('--queue-ttl-ms <ms>', 'batches older than this in the queue expire (counted)')
      .env('OPENBELL_QUEUE_TTL_MS')
      .argParser(integer)
      .default(t.queueTtlMs),
    new Option(
      '--queue-max-length <n>',
      'batches the queue holds before dropping its oldest (counted)',
    )
      .env('OPENBELL_QUEUE_MAX_LENGTH')
      .argParser(integer)
      .default(t.queueMaxLength),
    new Option('--prefetch <n>', 'unacknowledged batches per analyzer')
      .env('OPENBELL_PREFETCH')
      .argParser(integer)
      .default(t.prefetch),
    new Option('--top <n>', 'rows per published board')
      .env('OPENBELL_TOP')
      .argParser(integer)
      .default(b.top),
    new Option('--publish-interval-ms <ms>', 'shortest interval between two board updates')
      .env('OPENBELL_PUBLISH_INTERVAL_MS')
      .argParser(integer)
      .default(b.publishIntervalMs),
    ...boardWindowOptions(),
  ];
}

/** `--state-degraded-ms`: how long a process stays not ready after Redis lost openbell's state. */
export function stateDegradedOption(): Option {
  return new Option(
    '--state-degraded-ms <ms>',
    'after Redis lost its state (restarted empty, flushed, rolled back), not ready for at least this long',
  )
    .env('OPENBELL_STATE_DEGRADED_MS')
    .argParser(integer)
    .default(30_000);
}

/** `--delivery`: how a publishing role (the mdp's listener, `replay --to-broker`) sends batches. */
export function deliveryOption(): Option {
  return new Option(
    '--delivery <mode>',
    'persistent: batches survive a broker restart (durable); transient: lost with it, cheaper',
  )
    .env('OPENBELL_DELIVERY')
    .choices(['persistent', 'transient'])
    .default(DEFAULTS.transport.delivery);
}

/** The flags of {@link connectionOptions}. */
export interface ConnectionFlags {
  redisUrl: string;
  /** Absent for commands that only read Redis. */
  amqpUrl?: string;
  namespace: string;
}

/** The flags of {@link analyzerOptions}. */
export interface AnalyzerFlags extends BoardWindowFlags {
  group: string;
  queueTtlMs: number;
  queueMaxLength: number;
  prefetch: number;
  top: number;
  publishIntervalMs: number;
}

/** The flags that define the trades window and momentum. */
export interface BoardWindowFlags {
  windowMs: number;
  momentumMinHistoryMs: number;
}

/** Validated connection options from the flags (named errors on bad values). */
export function parseConnectionFlags(flags: ConnectionFlags): ConnectionOptions {
  return parseConnectionOptions({
    redisUrl: flags.redisUrl,
    amqpUrl: flags.amqpUrl,
    namespace: flags.namespace,
  });
}

/** Validated board options from the flags (named errors on bad values). */
export function parseBoardFlags(
  flags: BoardWindowFlags & Partial<Pick<AnalyzerFlags, 'top' | 'publishIntervalMs'>>,
): BoardOptions {
  return parseBoardOptions({
    windowMs: flags.windowMs,
    momentumMinHistoryMs: flags.momentumMinHistoryMs,
    ...(flags.top === undefined ? {} : { top: flags.top }),
    ...(flags.publishIntervalMs === undefined
      ? {}
      : { publishIntervalMs: flags.publishIntervalMs }),
  });
}

/** The trades-window options, shared by the analyzers and `openbell boards`. */
export function boardWindowOptions(): Option[] {
  const b = DEFAULTS.board;
  return [
    new Option('--window-ms <ms>', 'sliding window of the trades and momentum boards')
      .env('OPENBELL_WINDOW_MS')
      .argParser(integer)
      .default(b.windowMs),
    new Option('--momentum-min-history-ms <ms>', 'history a symbol needs before momentum ranks it')
      .env('OPENBELL_MOMENTUM_MIN_HISTORY_MS')
      .argParser(integer)
      .default(b.momentumMinHistoryMs),
  ];
}
