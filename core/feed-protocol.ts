import { z } from 'zod';
import { parseWith } from './config.ts';
import { isValidSymbol } from './decode.ts';
import { DEFAULT_MAX_TOKEN_TTL_SECONDS } from './feed-token.ts';
import { BOARD_NAMES, type BoardName } from './names.ts';

/** Types of server messages on the trader feed (see servers/mdp/FEED.md). */
export type FeedMessageType = 'snapshot' | 'update' | 'ack' | 'error' | 'heartbeat';

/** Every server message: `seq` increases per channel and connection; `ts` is the server time. */
export interface FeedEnvelope<T = unknown> {
  type: FeedMessageType;
  channel: string;
  seq: number;
  ts: number;
  data: T;
}

/** Codes of feed `error` messages. */
export type FeedErrorCode =
  | 'bad_message'
  | 'unknown_op'
  | 'unknown_channel'
  | 'forbidden_channel'
  | 'too_many_subscriptions'
  | 'rate_limited'
  | 'not_authenticated'
  | 'unavailable';

/** WebSocket close codes the feed uses. */
export const FEED_CLOSE = {
  goingAway: 1001,
  policy: 1008,
  tooBig: 1009,
  tryAgainLater: 1013,
  unauthorized: 4401,
  /** Past the connections allowed per token subject (HTTP 429's meaning, as 4401 is 401's). */
  tooManyConnections: 4429,
} as const;

/** The subprotocol a client offers (with `bearer.<token>`) and the server selects. */
export const FEED_SUBPROTOCOL = 'openbell.v1';
/** Prefix of the subprotocol that carries a token. */
export const FEED_BEARER_PREFIX = 'bearer.';

/** A parsed channel name. */
export type FeedChannel = { kind: 'board'; board: BoardName } | { kind: 'symbol'; sym: string };

/** Parses `board:<name>` or `symbol:<SYM>`; undefined for anything else. */
export function parseChannel(channel: string): FeedChannel | undefined {
  if (channel.startsWith('board:')) {
    const board = channel.slice(6);
    return (BOARD_NAMES as readonly string[]).includes(board)
      ? { kind: 'board', board: board as BoardName }
      : undefined;
  }
  if (channel.startsWith('symbol:')) {
    const sym = channel.slice(7);
    return isValidSymbol(sym) ? { kind: 'symbol', sym } : undefined;
  }
  return undefined;
}

const id = z.union([z.string().max(64), z.number()]).optional();
const channels = z.array(z.string().max(64)).min(1).max(100);
const clientMessage = z.discriminatedUnion('op', [
  z.object({ op: z.literal('auth'), token: z.string().min(1).max(2048), id }),
  z.object({ op: z.literal('subscribe'), channels, top: z.number().int().min(1).optional(), id }),
  z.object({ op: z.literal('unsubscribe'), channels, id }),
  z.object({ op: z.literal('ping'), id }),
]);

/** A valid client message. */
export type FeedClientMessage = z.infer<typeof clientMessage>;

/** Client ops the feed knows. */
const OPS = new Set(['auth', 'subscribe', 'unsubscribe', 'ping']);

/**
 * Parses one client message (text); returns the message, or the error code and a message for the
 * client, and the `id` to echo when one could be read.
 */
export function parseClientMessage(
  text: string,
):
  | { message: FeedClientMessage }
  | { code: 'bad_message' | 'unknown_op'; detail: string; id?: string | number } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { code: 'bad_message', detail: 'not JSON' };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { code: 'bad_message', detail: 'not a JSON object' };
  }
  const record = raw as Record<string, unknown>;
  const echo =
    typeof record['id'] === 'string' || typeof record['id'] === 'number'
      ? { id: record['id'] }
      : {};
  if (typeof record['op'] !== 'string' || !OPS.has(record['op'])) {
    return { code: 'unknown_op', detail: `unknown op ${JSON.stringify(record['op'])}`, ...echo };
  }
  const result = clientMessage.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    return {
      code: 'bad_message',
      detail: `${issue.path.join('.') || 'message'}: ${issue.message}`,
      ...echo,
    };
  }
  return { message: result.data };
}

/** Limits and cadence of the feed. */
export interface FeedLimits {
  /** Conflation cadence: at most one update per channel and interval. @default 250 */
  cadenceMs: number;
  /**
   * Slices of the cadence: each client belongs to one, and a slice's clients get their updates at
   * the slice's own tick, `cadenceMs / slices` after the previous slice's. A large fan-out is sent
   * as many small ones spread over the cadence, instead of one burst that the last clients of it
   * wait through. Ticks stay at least {@link MIN_SLICE_MS} apart: a short cadence gets fewer
   * slices (see {@link tickSlices}). @default 10
   */
  slices: number;
  /** Largest client message. @default 4096 */
  maxMessageBytes: number;
  /** Channels per connection. @default 50 */
  maxSubscriptions: number;
  /** Client messages per second per connection (a token bucket). @default 20 */
  messagesPerSecond: number;
  /** Bucket size. @default 40 */
  messagesBurst: number;
  /** Rate-limited messages in one second that make a connection abusive (closed 1008). @default 100 */
  abuseMessagesPerSecond: number;
  /**
   * Connections per client address (IPv6: per /64), counting open WebSockets and connections that
   * have not sent their request yet. @default 100
   */
  maxConnectionsPerIp: number;
  /** Open WebSockets per token subject (`sub`); none in insecure mode. @default 10 */
  maxConnectionsPerSubject: number;
  /** Time a new connection has to send its request headers (an upgrade or a page request). @default 5000 */
  headerTimeoutMs: number;
  /** Time to authenticate after connecting. @default 5000 */
  handshakeTimeoutMs: number;
  /** Longest lifetime (`exp − iat`) of a token the feed accepts, seconds. @default 86400 */
  maxTokenTtlSeconds: number;
  /** Unsent bytes past which a client gets conflated snapshots instead of updates. @default 262144 */
  softLimitBytes: number;
  /** Unsent bytes past which a client is closed with 1013. @default 4194304 */
  hardLimitBytes: number;
  /**
   * How far behind a client may read (a ping it has not answered for this long) before it gets
   * conflated snapshots instead of updates. @default 2000
   */
  maxLagMs: number;
  /** How long a client may stay behind, with updates held back, before it is closed with 1013. @default 10000 */
  slowCloseMs: number;
  /** Heartbeat and ping interval; a peer that missed the previous ping is closed. @default 15000 */
  heartbeatMs: number;
}

/** Defaults of {@link FeedLimits}. */
export const FEED_DEFAULTS: FeedLimits = {
  cadenceMs: 250,
  slices: 10,
  maxMessageBytes: 4096,
  maxSubscriptions: 50,
  messagesPerSecond: 20,
  messagesBurst: 40,
  abuseMessagesPerSecond: 100,
  maxConnectionsPerIp: 100,
  maxConnectionsPerSubject: 10,
  headerTimeoutMs: 5000,
  handshakeTimeoutMs: 5000,
  maxTokenTtlSeconds: DEFAULT_MAX_TOKEN_TTL_SECONDS,
  softLimitBytes: 256 * 1024,
  hardLimitBytes: 4 * 1024 * 1024,
  maxLagMs: 2000,
  slowCloseMs: 10_000,
  heartbeatMs: 15_000,
};

const int = (min: number, max: number) => z.number().int().min(min).max(max);
const limitsSchema = z
  .strictObject({
    cadenceMs: int(10, 60_000).default(FEED_DEFAULTS.cadenceMs),
    slices: int(1, 100).default(FEED_DEFAULTS.slices),
    maxMessageBytes: int(64, 1_048_576).default(FEED_DEFAULTS.maxMessageBytes),
    maxSubscriptions: int(1, 10_000).default(FEED_DEFAULTS.maxSubscriptions),
    messagesPerSecond: int(1, 100_000).default(FEED_DEFAULTS.messagesPerSecond),
    messagesBurst: int(1, 100_000).default(FEED_DEFAULTS.messagesBurst),
    abuseMessagesPerSecond: int(1, 1_000_000).default(FEED_DEFAULTS.abuseMessagesPerSecond),
    maxConnectionsPerIp: int(1, 1_000_000).default(FEED_DEFAULTS.maxConnectionsPerIp),
    maxConnectionsPerSubject: int(1, 1_000_000).default(FEED_DEFAULTS.maxConnectionsPerSubject),
    headerTimeoutMs: int(100, 600_000).default(FEED_DEFAULTS.headerTimeoutMs),
    handshakeTimeoutMs: int(100, 600_000).default(FEED_DEFAULTS.handshakeTimeoutMs),
    maxTokenTtlSeconds: int(1, 366 * 86_400).default(FEED_DEFAULTS.maxTokenTtlSeconds),
    softLimitBytes: int(1024, 1 << 30).default(FEED_DEFAULTS.softLimitBytes),
    hardLimitBytes: int(1024, 1 << 30).default(FEED_DEFAULTS.hardLimitBytes),
    maxLagMs: int(100, 600_000).default(FEED_DEFAULTS.maxLagMs),
    slowCloseMs: int(200, 3_600_000).default(FEED_DEFAULTS.slowCloseMs),
    heartbeatMs: int(100, 3_600_000).default(FEED_DEFAULTS.heartbeatMs),
  })
  .refine((l) => l.hardLimitBytes > l.softLimitBytes, {
    message: 'hardLimitBytes must be above softLimitBytes',
    path: ['hardLimitBytes'],
  })
  .refine((l) => l.slowCloseMs > l.maxLagMs, {
    message: 'slowCloseMs must be above maxLagMs',
    path: ['slowCloseMs'],
  });

/** The shortest time between two slices' ticks. */
export const MIN_SLICE_MS = 5;

/** The slices a feed ticks: `slices`, or fewer if the cadence is too short for them all. */
export function tickSlices(limits: Pick<FeedLimits, 'cadenceMs' | 'slices'>): number {
  return Math.max(1, Math.min(limits.slices, Math.floor(limits.cadenceMs / MIN_SLICE_MS)));
}

/** Validates feed limits over {@link FEED_DEFAULTS}; throws ConfigError naming the field. */
export function parseFeedLimits(input: Partial<FeedLimits> = {}): FeedLimits {
  return parseWith(limitsSchema, input, 'feed');
}
