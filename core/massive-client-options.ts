import type { Logger } from 'pino';
import { BACKOFF_RESET_AFTER_MS } from './backoff.ts';
import { createDecodeCounts, type DecodeCounts } from './decode.ts';
import { ConfigError } from './errors.ts';
import type { MarketEvent, StatusMessage } from './events.ts';
import { marketSessionOpen } from './stall-watch.ts';

/** Massive's real-time US stocks WebSocket endpoint. */
export const MASSIVE_STOCKS_URL = 'wss://socket.massive.com/stocks';

/** Per-second aggregates and trades of every symbol: what the boards are computed from. */
export const DEFAULT_TOPICS: readonly string[] = Object.freeze(['A.*', 'T.*']);

/** Options of `createMassiveClient` (core/massive-client.ts). */
export interface MassiveClientOptions {
  /** WebSocket URL, e.g. {@link MASSIVE_STOCKS_URL} or a replayer's `ws://` URL. */
  url: string;
  /** Sent once per connection in the auth message; never logged. */
  apiKey: string;
  /** Subscriptions, e.g. `A.*` or `T.AAPL`. @default DEFAULT_TOPICS */
  topics?: readonly string[];
  log: Logger;
  /**
   * Called once per frame that carried events. `receivedAtMs` is epoch ms (fractional) taken when
   * the frame arrived; `bytes` is the frame's size on the wire. Must not throw (a throw is logged
   * and counted in `stats.callbackErrors`) and must not block: it runs on the socket's read path.
   */
  onEvents(events: MarketEvent[], receivedAtMs: number, bytes: number): void;
  /**
   * Called with the raw bytes of every frame that carried events, just before `onEvents` (for
   * recorders: statuses in the same frame are included, status-only frames are not). `data` is
   * the frame's own buffer: copy or consume it before returning if it must outlive the call.
   * Same rules as `onEvents`: must not throw (counted in `stats.callbackErrors`) or block.
   */
  onFrame?(data: Buffer, receivedAtMs: number): void;
  /** Called with every status message, after the client has acted on it. */
  onStatus?(status: StatusMessage): void;
  /**
   * Offered every frame first, as raw JSON bytes: returns how many events it took (the frame is
   * then done with: `onEvents` is not called for it), or `undefined` to have the frame decoded
   * and passed to `onEvents` as usual (e.g. `Listener#pushFrame`, which takes plain event frames
   * and leaves status messages and anything unusual to the decoder). Must not throw or block.
   */
  takeFrame?(data: Buffer, receivedAtMs: number): number | undefined;
  /** Decode issues are counted here by reason. @default a private counter */
  decodeCounts?: DecodeCounts;
  /** Ceiling of the first reconnect delay; doubles per failed attempt. @default 500 */
  backoffInitialMs?: number;
  /** Largest reconnect delay. @default 30000 */
  backoffMaxMs?: number;
  /**
   * How long a connection must stream before its drop starts the reconnect delays over: a server
   * that accepts, acknowledges the subscription and drops gets growing delays. @default 60000
   */
  backoffResetMs?: number;
  /**
   * Silence (no event frames) while streaming and {@link sessionOpen} that makes a stalled
   * upstream: counted in `stats.stalls`, logged, and the connection dropped and reconnected with
   * backoff. 0 turns stall detection off. @default 30000
   */
  stallTimeoutMs?: number;
  /**
   * Whether silence at `ms` (epoch) can be a stall; outside it, a quiet feed is expected.
   * `() => true` checks at any hour (the replayer and the lab). @default marketSessionOpen
   * (04:00–20:00 ET on trading days)
   */
  sessionOpen?: (ms: number) => boolean;
  /** Clock of the stall and backoff-reset decisions, epoch ms. @default Date.now */
  now?: () => number;
  /** Wait after `max_connections` (another connection took over the account). @default 60000 */
  maxConnectionsCooldownMs?: number;
  /** Longest wait for the handshake and then for `auth_success`; past it, reconnect. @default 10000 */
  authTimeoutMs?: number;
  /** Longest wait for subscription acks before streaming anyway. @default 5000 */
  subscribeAckTimeoutMs?: number;
  /** Keepalive ping period; nothing received over a whole period means a dead link. @default 30000 */
  pingIntervalMs?: number;
  /** Largest frame accepted; a bigger one closes the connection (1009). @default 16777216 */
  maxPayloadBytes?: number;
  /** Source of backoff jitter, in `[0, 1)`. @default Math.random */
  random?: () => number;
}

/** Lifecycle states of a {@link MassiveClient}. `failed` and `closed` are final. */
export type MassiveClientState =
  | 'idle'
  | 'connecting'
  | 'authenticating'
  | 'subscribing'
  | 'streaming'
  | 'backoff'
  | 'cooldown'
  | 'failed'
  | 'closed';

/** Counters of a {@link MassiveClient}, live (read them, do not keep a copy). */
export interface MassiveClientStats {
  frames: number;
  events: number;
  bytes: number;
  /** Frame elements dropped by the decoder (by reason in `decodeCounts`). */
  decodeIssues: number;
  /** Connections opened (WebSocket handshake completed). */
  connects: number;
  /** Connection attempts after the first. */
  reconnects: number;
  /** Status messages by status; statuses openbell does not know count as `other`. */
  statuses: Record<string, number>;
  /** Epoch ms of the last frame received. */
  lastFrameAtMs?: number;
  /** Topics of the current subscription not (yet) acknowledged. */
  unackedTopics: string[];
  /** Topics of the current subscription the server refused (not entitled). */
  rejectedTopics: string[];
  /** Times `onEvents`, `onFrame`, `onStatus` or a state listener threw. */
  callbackErrors: number;
  /** Connections dropped because the upstream sent no data for `stallTimeoutMs` of open market. */
  stalls: number;
  /** The delay of the last reconnect scheduled after a drop, ms (0 before the first). */
  reconnectDelayMs: number;
}

/** The defaults of {@link MassiveClientOptions}. */
export const MASSIVE_CLIENT_DEFAULTS = {
  topics: DEFAULT_TOPICS,
  backoffInitialMs: 500,
  backoffMaxMs: 30_000,
  backoffResetMs: BACKOFF_RESET_AFTER_MS,
  stallTimeoutMs: 30_000,
  maxConnectionsCooldownMs: 60_000,
  authTimeoutMs: 10_000,
  subscribeAckTimeoutMs: 5_000,
  pingIntervalMs: 30_000,
  maxPayloadBytes: 16 * 1024 * 1024,
} as const;

type Optional = 'onStatus' | 'onFrame' | 'takeFrame';
/** {@link MassiveClientOptions} with every default filled in. */
export type ResolvedMassiveClientOptions = Required<Omit<MassiveClientOptions, Optional>> &
  Pick<MassiveClientOptions, Optional>;

const TOPIC = /^[A-Za-z]+\.[^\s,]+$/;

/**
 * Merges `options` over {@link MASSIVE_CLIENT_DEFAULTS} and validates them; throws a
 * {@link ConfigError} naming the bad field.
 */
export function parseMassiveClientOptions(
  options: MassiveClientOptions,
): ResolvedMassiveClientOptions {
  const d = MASSIVE_CLIENT_DEFAULTS;
  const o: ResolvedMassiveClientOptions = {
    ...options,
    topics: options.topics ?? d.topics,
    decodeCounts: options.decodeCounts ?? createDecodeCounts(),
    backoffInitialMs: options.backoffInitialMs ?? d.backoffInitialMs,
    backoffMaxMs: options.backoffMaxMs ?? d.backoffMaxMs,
    backoffResetMs: options.backoffResetMs ?? d.backoffResetMs,
    stallTimeoutMs: options.stallTimeoutMs ?? d.stallTimeoutMs,
    sessionOpen: options.sessionOpen ?? marketSessionOpen,
    now: options.now ?? Date.now,
    maxConnectionsCooldownMs: options.maxConnectionsCooldownMs ?? d.maxConnectionsCooldownMs,
    authTimeoutMs: options.authTimeoutMs ?? d.authTimeoutMs,
    subscribeAckTimeoutMs: options.subscribeAckTimeoutMs ?? d.subscribeAckTimeoutMs,
    pingIntervalMs: options.pingIntervalMs ?? d.pingIntervalMs,
    maxPayloadBytes: options.maxPayloadBytes ?? d.maxPayloadBytes,
    random: options.random ?? Math.random,
  };
  const bad = (field: string, message: string) => new ConfigError(`massive.${field}`, message);
  if (!/^wss?:\/\//.test(o.url) || !URL.canParse(o.url))
    throw bad('url', 'must be a ws:// or wss:// URL');
  if (typeof o.apiKey !== 'string' || o.apiKey === '') throw bad('apiKey', 'must not be empty');
  if (o.topics.length === 0 || !o.topics.every((t) => TOPIC.test(t))) {
    throw bad('topics', 'must be one or more topics like "A.*" or "T.AAPL"');
  }
  for (const field of [
    'backoffInitialMs',
    'backoffMaxMs',
    'maxConnectionsCooldownMs',
    'authTimeoutMs',
    'subscribeAckTimeoutMs',
    'pingIntervalMs',
    'maxPayloadBytes',
  ] as const) {
    const value = o[field];
    if (!Number.isSafeInteger(value) || value < 1) throw bad(field, 'must be an integer ≥ 1');
  }
  for (const field of ['backoffResetMs', 'stallTimeoutMs'] as const) {
    const value = o[field];
    if (!Number.isSafeInteger(value) || value < 0) throw bad(field, 'must be an integer ≥ 0');
  }
  if (o.backoffMaxMs < o.backoffInitialMs) throw bad('backoffMaxMs', 'must be ≥ backoffInitialMs');
  return o;
}
