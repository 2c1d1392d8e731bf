import type { Logger } from 'pino';
import { WebSocket, type RawData } from 'ws';
import { createReconnectBackoff, type ReconnectBackoff } from './backoff.ts';
import { decodeFrame } from './decode.ts';
import { ServiceError } from './errors.ts';
import type { KnownStatus, StatusMessage } from './events.ts';
import { createLogThrottle, type LogThrottle } from './log-throttle.ts';
import {
  parseMassiveClientOptions,
  type MassiveClientOptions,
  type MassiveClientState,
  type MassiveClientStats,
  type ResolvedMassiveClientOptions,
} from './massive-client-options.ts';
import { redactUrl } from './redact.ts';
import { createStallWatch, type StallWatch } from './stall-watch.ts';

export {
  DEFAULT_TOPICS,
  MASSIVE_CLIENT_DEFAULTS,
  MASSIVE_STOCKS_URL,
} from './massive-client-options.ts';
export type {
  MassiveClientOptions,
  MassiveClientState,
  MassiveClientStats,
} from './massive-client-options.ts';

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
/** How long close() waits for the server to answer the close handshake before cutting. */
const CLOSE_GRACE_MS = 1000;

/**
 * Creates a client that connects, authenticates, subscribes and streams, reconnecting with
 * jittered exponential backoff (starting over only after a connection streamed for
 * `backoffResetMs`), dropping a connection that carries no data for `stallTimeoutMs` of open
 * market, cooling down after `max_connections` and giving up for good on `auth_failed`. Throws a
 * ConfigError for invalid options. Call `start()` to connect.
 */
export function createMassiveClient(options: MassiveClientOptions): MassiveClient {
  return new Client(parseMassiveClientOptions(options));
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
    stalls: 0,
    reconnectDelayMs: 0,
  };
  readonly #o: ResolvedMassiveClientOptions;
  readonly #log: Logger;
  readonly #listeners = new Set<Listener>();
  #ws: WebSocket | undefined;
  /** The one pending phase timer: auth or ack timeout while connected, backoff or cool-down after. */
  #timer: NodeJS.Timeout | undefined;
  #pingTimer: NodeJS.Timeout | undefined;
  #stallTimer: NodeJS.Timeout | undefined;
  #heardSincePing = true;
  readonly #backoff: ReconnectBackoff;
  readonly #stall: StallWatch;
  /** Lines that can repeat per message or per retry are written at most once per 10 s each. */
  readonly #logs: LogThrottle;
  #pending = new Set<string>();
  #subscribedOk = false;
  /** The status that announced the server's coming close, if any. */
  #closeStatus: string | undefined;
  /** Why the client dropped the connection itself, if it did. */
  #dropReason: string | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: ResolvedMassiveClientOptions) {
    this.#o = options;
    this.#log = options.log;
    this.#backoff = createReconnectBackoff({
      initialMs: options.backoffInitialMs,
      maxMs: options.backoffMaxMs,
      resetAfterMs: options.backoffResetMs,
      random: options.random,
      now: options.now,
    });
    this.#logs = createLogThrottle({ now: options.now });
    this.#stall = createStallWatch({
      timeoutMs: options.stallTimeoutMs,
      sessionOpen: options.sessionOpen,
      now: options.now,
    });
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
    this.#dropReason = undefined;
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
      if (ws !== this.#ws || this.#closing !== undefined) return;
      const suppressed = this.#logs.take('socket-error');
      if (suppressed !== undefined)
        this.#log.warn({ err: this.#redactError(error), suppressed }, 'massive socket error');
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
      const suppressed = this.#logs.take('server-disconnect');
      if (suppressed !== undefined)
        this.#log.warn(
          { status: status.status, message, suppressed },
          'massive server is disconnecting us',
        );
      this.#closeStatus = status.status;
      ws.close(1000);
    } else if (status.status !== 'connected') {
      // A status openbell does not act on; a server repeating one must not flood the log.
      const suppressed = this.#logs.take('status');
      if (suppressed !== undefined)
        this.#log.info({ status: status.status, message, suppressed }, 'massive status');
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
      const suppressed = ok ? undefined : this.#logs.take('error-status');
      if (suppressed !== undefined) this.#log.warn({ message, suppressed }, 'massive error status');
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
    // Streaming counts towards resetting the backoff only if a subscription took.
    if (this.#subscribedOk) this.#backoff.streaming();
    this.#log.info({ rejected: this.stats.rejectedTopics }, 'massive streaming');
    this.#setState('streaming');
    this.#watchForStalls();
  }

  /** Reads the event count every quarter of the stall timeout (at most every second). */
  #watchForStalls(): void {
    const ws = this.#ws;
    if (this.#o.stallTimeoutMs === 0 || ws === undefined) return;
    this.#stall.reset(this.stats.events);
    const periodMs = Math.max(10, Math.min(1000, Math.floor(this.#o.stallTimeoutMs / 4)));
    clearInterval(this.#stallTimer);
    this.#stallTimer = setInterval(() => {
      if (ws !== this.#ws || this.state !== 'streaming') return;
      if (!this.#stall.check(this.stats.events)) return;
      this.stats.stalls++;
      const silentMs = this.#stall.silentMs();
      this.#log.warn(
        { silentMs, stallTimeoutMs: this.#o.stallTimeoutMs, stalls: this.stats.stalls },
        'massive stalled: no data while the market is open; reconnecting',
      );
      this.#dropReason = 'stalled';
      ws.terminate();
    }, periodMs).unref();
  }

  #onClose(ws: WebSocket, code: number, reason: string): void {
    if (ws !== this.#ws) return;
    this.#ws = undefined;
    this.#clearTimers();
    if (this.#closing !== undefined || this.state === 'failed') return;
    const status = this.#closeStatus;
    const dropped = this.#dropReason;
    const detail = `closed ${code}${status === undefined ? '' : ` after ${status}`}${dropped === undefined ? '' : ` (${dropped})`}`;
    // A stalled connection streamed only until its last data: the silence does not count.
    this.#backoff.disconnected(dropped === 'stalled' ? this.#stall.quietSinceMs : undefined);
    const cooldown = status === 'max_connections';
    const state = cooldown ? 'cooldown' : 'backoff';
    const delayMs = cooldown ? this.#o.maxConnectionsCooldownMs : this.#backoff.nextDelayMs();
    this.stats.reconnectDelayMs = delayMs;
    const suppressed = this.#logs.take('disconnect');
    if (suppressed !== undefined) {
      const attempt = this.#backoff.attempt;
      const fields = { code, reason: this.#redact(reason), status, dropped, delayMs, attempt };
      this.#log.warn(
        { ...fields, suppressed },
        `massive disconnected; reconnecting after ${state}`,
      );
    }
    this.#reconnectAfter(state, delayMs, detail);
  }

  #reconnectAfter(state: 'backoff' | 'cooldown', delayMs: number, detail: string): void {
    this.#setState(state, detail);
    // Kept referenced: a started client keeps the process alive until close().
    this.#timer = setTimeout(() => {
      this.stats.reconnects++;
      this.#connect();
    }, delayMs);
  }

  #drop(ws: WebSocket, reason: string): void {
    const suppressed = this.#logs.take('drop');
    if (suppressed !== undefined)
      this.#log.warn({ reason, state: this.state, suppressed }, 'massive dropping connection');
    this.#dropReason = reason;
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
    clearInterval(this.#stallTimer);
    this.#stallTimer = undefined;
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
      // A callback that always throws would otherwise write a line per frame.
      const suppressed = this.#logs.take(`callback:${name}`);
      if (suppressed !== undefined)
        this.#log.error(
          { err: error, callback: name, count, suppressed },
          'massive callback threw',
        );
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
