import type { Logger } from 'pino';
import { WebSocket, type RawData } from 'ws';
import { nextBackoffMs } from './backoff.ts';
import { createDecodeCounts, decodeFrame, type DecodeCounts } from './decode.ts';
import { ConfigError, ServiceError } from './errors.ts';
import type { KnownStatus, MarketEvent, StatusMessage } from './events.ts';
import { redactUrl } from './redact.ts';

/** Massive's real-time US stocks WebSocket endpoint. */
export const MASSIVE_STOCKS_URL = 'wss://socket.massive.com/stocks';

/** Per-second aggregates and trades of every symbol: what the boards are computed from. */
export const DEFAULT_TOPICS: readonly string[] = Object.freeze(['A.*', 'T.*']);

/** Options of {@link createMassiveClient}. */
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
}

/** A self-reconnecting client of the Massive stocks WebSocket feed. */
export interface MassiveClient {
  readonly state: MassiveClientState;
  readonly stats: MassiveClientStats;
  /** Why the client is `failed` (e.g. `auth_failed`); never contains the API key. */
  readonly error: Error | undefined;
  /** Begins connecting; idempotent, and a no-op once closed. */
  start(): void;
  /** Stops reconnecting and closes the socket; idempotent; resolves once closed. */
  close(): Promise<void>;
  /** Calls `listener` on every state change; returns its unsubscribe function. */
  onStateChange(listener: (state: MassiveClientState, detail?: string) => void): () => void;
}

/** The defaults of {@link MassiveClientOptions}. */
export const MASSIVE_CLIENT_DEFAULTS = {
  topics: DEFAULT_TOPICS,
  backoffInitialMs: 500,
  backoffMaxMs: 30_000,
  maxConnectionsCooldownMs: 60_000,
  authTimeoutMs: 10_000,
  subscribeAckTimeoutMs: 5_000,
  pingIntervalMs: 30_000,
  maxPayloadBytes: 16 * 1024 * 1024,
} as const;

type Optional = 'onStatus' | 'onFrame' | 'takeFrame';
type Resolved = Required<Omit<MassiveClientOptions, Optional>> &
  Pick<MassiveClientOptions, Optional>;

const KNOWN_STATUSES: ReadonlySet<string> = new Set<KnownStatus>([
  'connected',
  'success',
  'auth_success',
  'auth_failed',
  'auth_timeout',
  'auth_required',
  'error',
  'max_connections',
  'slow_consumer',
  'force_disconnect',
]);
/** Statuses after which the client drops the connection and reconnects with backoff. */
const RECONNECT_STATUSES = new Set(['auth_timeout', 'slow_consumer', 'force_disconnect']);
const TOPIC = /^[A-Za-z]+\.[^\s,]+$/;
/** How long close() waits for the server to answer the close handshake before cutting. */
const CLOSE_GRACE_MS = 1000;

/**
 * Creates a client that connects, authenticates, subscribes and streams, reconnecting with
 * jittered exponential backoff, cooling down after `max_connections` and giving up for good on
 * `auth_failed`. Throws a {@link ConfigError} for invalid options. Call `start()` to connect.
 */
export function createMassiveClient(options: MassiveClientOptions): MassiveClient {
  return new Client(resolveOptions(options));
}

function resolveOptions(options: MassiveClientOptions): Resolved {
  const d = MASSIVE_CLIENT_DEFAULTS;
  const o: Resolved = {
    ...options,
    topics: options.topics ?? d.topics,
    decodeCounts: options.decodeCounts ?? createDecodeCounts(),
    backoffInitialMs: options.backoffInitialMs ?? d.backoffInitialMs,
    backoffMaxMs: options.backoffMaxMs ?? d.backoffMaxMs,
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
  if (o.backoffMaxMs < o.backoffInitialMs) throw bad('backoffMaxMs', 'must be ≥ backoffInitialMs');
  return o;
}

type Listener = (state: MassiveClientState, detail?: string) => void;

class Client implements MassiveClient {
  state: MassiveClientState = 'idle';
  error: Error | undefined;
  readonly stats: MassiveClientStats = {
    frames: 0,
    events: 0,
    bytes: 0,
    decodeIssues: 0,
    connects: 0,
    reconnects: 0,
    statuses: {},
    unackedTopics: [],
    rejectedTopics: [],
    callbackErrors: 0,
  };
  readonly #o: Resolved;
  readonly #log: Logger;
  readonly #listeners = new Set<Listener>();
  #ws: WebSocket | undefined;
  /** The one pending phase timer: auth or ack timeout while connected, backoff or cool-down after. */
  #timer: NodeJS.Timeout | undefined;
  #pingTimer: NodeJS.Timeout | undefined;
  #heardSincePing = true;
  #attempt = 0;
  #pending = new Set<string>();
  #subscribedOk = false;
  /** The status that announced the server's coming close, if any. */
  #closeStatus: string | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: Resolved) {
    this.#o = options;
    this.#log = options.log;
  }

  start(): void {
    if (this.state !== 'idle') return;
    this.#log.info(
      { url: redactUrl(this.#o.url), topics: this.#o.topics },
      'massive client starting',
    );
    this.#connect();
  }

  close(): Promise<void> {
    return (this.#closing ??= this.#shutdown());
  }

  onStateChange(listener: Listener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async #shutdown(): Promise<void> {
    this.#clearTimers();
    const ws = this.#ws;
    if (ws !== undefined) await closeSocket(ws, CLOSE_GRACE_MS);
    this.#ws = undefined;
    this.#setState('closed');
    const { frames, events, connects, reconnects } = this.stats;
    this.#log.info({ frames, events, connects, reconnects }, 'massive client closed');
  }

  #setState(state: MassiveClientState, detail?: string): void {
    this.state = state;
    for (const listener of this.#listeners)
      this.#invoke('onStateChange', () => listener(state, detail));
  }

  #connect(): void {
    this.#setState('connecting');
    this.#closeStatus = undefined;
    this.#subscribedOk = false;
    const ws = new WebSocket(this.#o.url, {
      maxPayload: this.#o.maxPayloadBytes,
      handshakeTimeout: this.#o.authTimeoutMs,
    });
    this.#ws = ws;
    ws.on('open', () => this.#onOpen(ws));
    ws.on('message', (data) => this.#onMessage(ws, data));
    ws.on('pong', () => (this.#heardSincePing = true));
    ws.on('error', (error) => {
      // The 'close' event that always follows decides what happens next; here we only log.
      if (ws === this.#ws && this.#closing === undefined)
        this.#log.warn({ err: this.#redactError(error) }, 'massive socket error');
    });
    ws.on('close', (code, reason) => this.#onClose(ws, code, reason.toString()));
  }

  #onOpen(ws: WebSocket): void {
    if (ws !== this.#ws) return;
    this.stats.connects++;
    this.#log.info({ url: redactUrl(this.#o.url) }, 'massive connected, authenticating');
    this.#setState('authenticating');
    ws.send(JSON.stringify({ action: 'auth', params: this.#o.apiKey }));
    this.#setTimer(this.#o.authTimeoutMs, () => this.#drop(ws, 'no auth_success in time'));
    this.#heardSincePing = true;
    this.#pingTimer = setInterval(() => {
      if (!this.#heardSincePing) return this.#drop(ws, 'keepalive timeout');
      this.#heardSincePing = false;
      ws.ping();
    }, this.#o.pingIntervalMs).unref();
  }

  #onMessage(ws: WebSocket, data: RawData): void {
    if (ws !== this.#ws) return;
    const receivedAtMs = performance.timeOrigin + performance.now();
    // binaryType is 'nodebuffer' (the default), so every message arrives as one Buffer.
    const buffer = data as Buffer;
    this.#heardSincePing = true;
    this.stats.frames++;
    this.stats.bytes += buffer.length;
    this.stats.lastFrameAtMs = receivedAtMs;
    // Frames of events only, once streaming: statuses and the first events go the ordinary way.
    const takeFrame = this.#o.takeFrame;
    if (takeFrame !== undefined && this.state === 'streaming') {
      const taken = this.#take(takeFrame, buffer, receivedAtMs);
      if (taken !== undefined) {
        this.stats.events += taken;
        return;
      }
    }
    const frame = decodeFrame(buffer, this.#o.decodeCounts);
    this.stats.decodeIssues += frame.issues.length;
    for (const status of frame.statuses) this.#onStatus(ws, status);
    if (frame.events.length === 0) return;
    this.stats.events += frame.events.length;
    if (this.state === 'subscribing') {
      this.#subscribedOk = true;
      this.#streaming();
    }
    const onFrame = this.#o.onFrame;
    if (onFrame !== undefined) this.#invoke('onFrame', () => onFrame(buffer, receivedAtMs));
    this.#invoke('onEvents', () => this.#o.onEvents(frame.events, receivedAtMs, buffer.length));
  }

  #onStatus(ws: WebSocket, status: StatusMessage): void {
    const key = KNOWN_STATUSES.has(status.status) ? status.status : 'other';
    this.stats.statuses[key] = (this.stats.statuses[key] ?? 0) + 1;
    const message = this.#redact(status.message ?? '');
    if (status.status === 'auth_success') this.#subscribe(ws);
    else if (status.status === 'success') this.#acknowledge(message, true);
    else if (status.status === 'error') this.#acknowledge(message, false);
    else if (status.status === 'auth_failed') {
      this.#fail(new ServiceError('massive', `authentication failed (${message}); not retrying`));
    } else if (status.status === 'auth_required') this.#drop(ws, 'server says not authenticated');
    else if (status.status === 'max_connections' || RECONNECT_STATUSES.has(status.status)) {
      this.#log.warn({ status: status.status, message }, 'massive server is disconnecting us');
      this.#closeStatus = status.status;
      ws.close(1000);
    } else if (status.status !== 'connected') {
      this.#log.info({ status: status.status, message }, 'massive status');
    }
    const onStatus = this.#o.onStatus;
    if (onStatus !== undefined) this.#invoke('onStatus', () => onStatus(status));
  }

  #subscribe(ws: WebSocket): void {
    this.#setState('subscribing');
    this.#pending = new Set(this.#o.topics);
    this.stats.unackedTopics = [...this.#pending];
    this.stats.rejectedTopics = [];
    ws.send(JSON.stringify({ action: 'subscribe', params: this.#o.topics.join(',') }));
    this.#setTimer(this.#o.subscribeAckTimeoutMs, () => this.#streaming());
  }

  /** Settles the pending topics a `success` or `error` message names (Massive sends no ids). */
  #acknowledge(message: string, ok: boolean): void {
    const named = message
      .split(/[\s,]+/)
      .map((token) => token.replace(/:$/, ''))
      .filter((token) => this.#pending.delete(token));
    if (named.length === 0) {
      if (!ok) this.#log.warn({ message }, 'massive error status');
      return;
    }
    this.stats.unackedTopics = [...this.#pending];
    if (ok) this.#subscribedOk = true;
    else {
      this.stats.rejectedTopics.push(...named);
      this.#log.warn({ topics: named, message }, 'massive subscription refused');
    }
    if (this.#pending.size === 0 && this.state === 'subscribing') this.#streaming();
  }

  #streaming(): void {
    this.#clearTimer();
    const unacked = this.stats.unackedTopics;
    if (unacked.length > 0) this.#log.warn({ topics: unacked }, 'massive topics unacknowledged');
    // A subscription that took resets the backoff; one refused everywhere does not.
    if (this.#subscribedOk) this.#attempt = 0;
    this.#log.info({ rejected: this.stats.rejectedTopics }, 'massive streaming');
    this.#setState('streaming');
  }

  #onClose(ws: WebSocket, code: number, reason: string): void {
    if (ws !== this.#ws) return;
    this.#ws = undefined;
    this.#clearTimers();
    if (this.#closing !== undefined || this.state === 'failed') return;
    const detail = `closed ${code}${this.#closeStatus === undefined ? '' : ` after ${this.#closeStatus}`}`;
    this.#log.warn(
      { code, reason: this.#redact(reason), status: this.#closeStatus },
      'massive disconnected',
    );
    if (this.#closeStatus === 'max_connections') {
      this.#reconnectAfter('cooldown', this.#o.maxConnectionsCooldownMs, detail);
    } else {
      const { backoffInitialMs, backoffMaxMs, random } = this.#o;
      const delayMs = nextBackoffMs(this.#attempt++, backoffInitialMs, backoffMaxMs, random);
      this.#reconnectAfter('backoff', delayMs, detail);
    }
  }

  #reconnectAfter(state: 'backoff' | 'cooldown', delayMs: number, detail: string): void {
    this.#log.info({ delayMs, attempt: this.#attempt }, `massive reconnecting after ${state}`);
    this.#setState(state, detail);
    // Kept referenced: a started client keeps the process alive until close().
    this.#timer = setTimeout(() => {
      this.stats.reconnects++;
      this.#connect();
    }, delayMs);
  }

  #drop(ws: WebSocket, reason: string): void {
    this.#log.warn({ reason, state: this.state }, 'massive dropping connection');
    ws.terminate();
  }

  #fail(error: Error): void {
    this.error = error;
    this.#clearTimers();
    this.#log.error({ err: error }, 'massive client failed');
    this.#setState('failed', error.message);
    const ws = this.#ws;
    this.#ws = undefined;
    ws?.terminate();
  }

  #setTimer(delayMs: number, callback: () => void): void {
    this.#clearTimer();
    this.#timer = setTimeout(callback, delayMs).unref();
  }

  #clearTimer(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #clearTimers(): void {
    this.#clearTimer();
    clearInterval(this.#pingTimer);
    this.#pingTimer = undefined;
  }

  /**
   * Offers a frame to `takeFrame`. A frame it took is also shown to `onFrame`; one it threw on
   * is lost, counted in `stats.callbackErrors` like a throwing `onEvents`.
   */
  #take(
    takeFrame: NonNullable<MassiveClientOptions['takeFrame']>,
    buffer: Buffer,
    receivedAtMs: number,
  ): number | undefined {
    let taken: number | undefined = 0;
    this.#invoke('takeFrame', () => (taken = takeFrame(buffer, receivedAtMs)));
    if (taken === undefined) return undefined;
    const onFrame = this.#o.onFrame;
    if (onFrame !== undefined) this.#invoke('onFrame', () => onFrame(buffer, receivedAtMs));
    return taken;
  }

  /** Runs a caller's callback; a throw must not break the socket's read loop. */
  #invoke(name: string, callback: () => void): void {
    try {
      callback();
    } catch (error) {
      const count = ++this.stats.callbackErrors;
      // Logged at powers of two, so a callback that always throws cannot flood the log.
      if ((count & (count - 1)) === 0) {
        this.#log.error({ err: error, callback: name, count }, 'massive callback threw');
      }
    }
  }

  /** Belt and braces: the key is never put in a message, but servers echo what they get. */
  #redact(text: string): string {
    return text.split(this.#o.apiKey).join('***');
  }

  #redactError(error: Error): Error {
    if (!error.message.includes(this.#o.apiKey)) return error;
    return new Error(this.#redact(error.message));
  }
}

/** Closes `ws` gracefully, terminating it when the close handshake takes over `graceMs`. */
function closeSocket(ws: WebSocket, graceMs: number): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => ws.terminate(), graceMs).unref();
    ws.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    if (ws.readyState === WebSocket.OPEN) ws.close(1000, 'client closing');
    else ws.terminate();
  });
}
