import { InvalidArgumentError, Option } from 'commander';
import { DEFAULTS } from '../core/index.ts';

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
