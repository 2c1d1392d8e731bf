import { z } from 'zod';
import { ConfigError } from './errors.ts';
import { redactUrl } from './redact.ts';

/** Connections to the backing services. */
export interface ConnectionOptions {
  /** @default 'redis://127.0.0.1:6379' */
  redisUrl: string;
  /** @default 'amqp://127.0.0.1:5672' */
  amqpUrl: string;
  /** First segment of every key, queue and exchange name. @default 'openbell' */
  namespace: string;
}

/** Listener-to-analyzer transport: batching, buffering and the consumer-group queues. */
export interface TransportOptions {
  /** Events older than this in a queue expire (freshness over completeness). @default 5000 */
  queueTtlMs: number;
  /** Batches a queue holds before dropping its oldest. @default 20000 */
  queueMaxLength: number;
  /** Unacknowledged batches per consumer. @default 128 */
  prefetch: number;
  /** Events per published batch. @default 500 */
  batchMaxEvents: number;
  /** Longest an event waits for its batch to fill. @default 10 */
  batchMaxDelayMs: number;
  /** Events the listener buffers while the broker is slow; past it, the oldest are dropped. @default 1000000 */
  bufferMaxEvents: number;
  /**
   * How batches are published: `persistent` batches in the durable queues survive a broker
   * restart (and are confirmed once safe); `transient` ones are lost with it. @default 'persistent'
   */
  delivery: 'persistent' | 'transient';
}

/** Board computation and publication. */
export interface BoardOptions {
  /** Rows in a published board view. @default 20 */
  top: number;
  /** Sliding window of the trades and momentum boards. @default 60000 */
  windowMs: number;
  /** History a symbol needs before it is ranked by momentum. @default 300000 */
  momentumMinHistoryMs: number;
  /** Shortest interval between two published updates of a board. @default 250 */
  publishIntervalMs: number;
}

/** The defaults of every options type, in one place. */
export const DEFAULTS = {
  connection: {
    redisUrl: 'redis://127.0.0.1:6379',
    amqpUrl: 'amqp://127.0.0.1:5672',
    namespace: 'openbell',
  },
  transport: {
    queueTtlMs: 5000,
    queueMaxLength: 20_000,
    prefetch: 128,
    batchMaxEvents: 500,
    batchMaxDelayMs: 10,
    bufferMaxEvents: 1_000_000,
    delivery: 'persistent',
  },
  board: {
    top: 20,
    windowMs: 60_000,
    momentumMinHistoryMs: 300_000,
    publishIntervalMs: 250,
  },
} as const satisfies {
  connection: ConnectionOptions;
  transport: TransportOptions;
  board: BoardOptions;
};

const int = (min: number, max: number) => z.number().int().min(min).max(max);
const url = (schemes: readonly string[]) =>
  z
    .string()
    .refine((value) => schemes.some((s) => value.startsWith(`${s}://`)) && URL.canParse(value), {
      message: `must be a ${schemes.map((s) => `${s}://`).join(' or ')} URL`,
    });

const connectionSchema = z.strictObject({
  redisUrl: url(['redis', 'rediss']).default(DEFAULTS.connection.redisUrl),
  amqpUrl: url(['amqp', 'amqps']).default(DEFAULTS.connection.amqpUrl),
  namespace: z
    .string()
    .regex(
      /^[a-z][a-z0-9_-]{0,63}$/,
      'must be lowercase letters, digits, _ or -, starting with a letter',
    )
    .default(DEFAULTS.connection.namespace),
});

const transportSchema = z.strictObject({
  queueTtlMs: int(1, 3_600_000).default(DEFAULTS.transport.queueTtlMs),
  queueMaxLength: int(1, 10_000_000).default(DEFAULTS.transport.queueMaxLength),
  prefetch: int(1, 65_535).default(DEFAULTS.transport.prefetch),
  batchMaxEvents: int(1, 10_000).default(DEFAULTS.transport.batchMaxEvents),
  batchMaxDelayMs: int(0, 1000).default(DEFAULTS.transport.batchMaxDelayMs),
  bufferMaxEvents: int(1000, 100_000_000).default(DEFAULTS.transport.bufferMaxEvents),
  delivery: z.enum(['persistent', 'transient']).default(DEFAULTS.transport.delivery),
});

const boardSchema = z.strictObject({
  top: int(1, 500).default(DEFAULTS.board.top),
  windowMs: int(1000, 3_600_000).default(DEFAULTS.board.windowMs),
  momentumMinHistoryMs: int(0, 86_400_000).default(DEFAULTS.board.momentumMinHistoryMs),
  publishIntervalMs: int(10, 60_000).default(DEFAULTS.board.publishIntervalMs),
});

/** Validates connection options over {@link DEFAULTS}; throws {@link ConfigError} naming the field. */
export function parseConnectionOptions(input: Partial<ConnectionOptions> = {}): ConnectionOptions {
  return parseWith(connectionSchema, input, 'connection');
}

/** Validates transport options over {@link DEFAULTS}; throws {@link ConfigError} naming the field. */
export function parseTransportOptions(input: Partial<TransportOptions> = {}): TransportOptions {
  return parseWith(transportSchema, input, 'transport');
}

/** Validates board options over {@link DEFAULTS}; throws {@link ConfigError} naming the field. */
export function parseBoardOptions(input: Partial<BoardOptions> = {}): BoardOptions {
  return parseWith(boardSchema, input, 'board');
}

/**
 * Parses `input` with a zod schema and turns the first failure into a {@link ConfigError} that
 * names the field, the rule it broke and the value it got (URLs redacted).
 */
export function parseWith<T>(schema: z.ZodType<T>, input: unknown, scope: string): T {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = issue.path.map(String);
  const field = [scope, ...path].join('.');
  const value = path.reduce<unknown>(
    (at, key) =>
      typeof at === 'object' && at !== null ? (at as Record<string, unknown>)[key] : undefined,
    input,
  );
  const shown = typeof value === 'string' && /url$/i.test(field) ? redactUrl(value) : value;
  const got =
    issue.code === 'unrecognized_keys' ? '' : `, got ${JSON.stringify(shown) ?? String(shown)}`;
  throw new ConfigError(field, `${issue.message}${got}`);
}
