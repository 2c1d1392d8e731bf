import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { STATUS_BIT, typeBit } from '../core/index.ts';

/** Options of {@link createMassiveServer}. */
export interface MassiveServerOptions {
  /** The one key `auth` accepts. @default 'test-key' */
  apiKey?: string;
  /** Loopback by default; the replayer serves nothing beyond the machine unless asked. @default '127.0.0.1' */
  host?: string;
  /** @default 0 (any free port) */
  port?: number;
  /** A connection not authenticated by then gets `auth_timeout` and is closed. @default 10000 */
  authTimeoutMs?: number;
  /** Whether the account may subscribe to `topic`; if not, an `error` status. @default all */
  entitled?: (topic: string) => boolean;
  /** Whether a subscription to `topic` is answered at all (Massive ignores unknown prefixes). @default all */
  answered?: (topic: string) => boolean;
  /**
   * Massive's slow-consumer policy: a client whose unsent data passes this many bytes gets a
   * `slow_consumer` status and is disconnected. @default 64 MiB
   */
  slowConsumerBytes?: number;
  /** How long a slow consumer's close may take before the connection is cut. @default 1000 */
  slowConsumerGraceMs?: number;
}

/** A frame to broadcast: the raw wire text and the types it holds (see `FrameInfo`). */
export interface ServedFrame {
  data: Buffer;
  events: number;
  types: number;
}

/** Counters of a {@link MassiveServer}. */
export interface MassiveServerStats {
  /** Frames and events written to clients (a frame sent to two clients counts twice). */
  framesSent: number;
  eventsSent: number;
  bytesSent: number;
  /** Frames that had to be parsed and cut down to a client's subscriptions. */
  framesFiltered: number;
  slowConsumerCloses: number;
  /** Events not written because the server was stalled ({@link MassiveServer.stall}). */
  stalledEvents: number;
}

/** A loopback WebSocket server speaking the Massive stocks protocol: the replayer's face, and the tests'. */
export interface MassiveServer {
  /** `ws://<host>:<port>`. */
  readonly url: string;
  readonly port: number;
  /** Authenticated, connected clients. */
  readonly clients: number;
  /** Connections accepted since the start, authenticated or not. */
  readonly connections: number;
  readonly stats: Readonly<MassiveServerStats>;
  /** Resolves once `count` authenticated clients have subscribed; rejects after `timeoutMs`. */
  waitForSubscribers(count?: number, timeoutMs?: number): Promise<void>;
  /**
   * Sends a recorded frame to every client, cut down to what each subscribed to (topic and
   * symbol). A client subscribed to every type in the frame gets the raw bytes untouched.
   */
  broadcast(frame: ServedFrame): void;
  /** Resolves once every client's unsent data is below `bytes` (backpressure for `--speed max`). */
  drained(bytes: number): Promise<void>;
  /**
   * Sends a frame unfiltered to every subscribed client; a string is sent as it is (malformed on
   * purpose), a Buffer as the text frame's bytes (encoded once, ahead of time).
   */
  send(frame: unknown[] | string | Buffer): void;
  /** Sends a status to every authenticated client, then closes them when `close` is set. */
  sendStatus(status: string, message?: string, close?: boolean): void;
  /** Terminates every connection without a close handshake (clients see 1006). */
  dropConnections(): void;
  /**
   * Stalls the feed (a silent upstream, for fault injection): connections stay open and answer
   * pings, and frames are not written to anyone (counted in `stalledEvents`) until unstalled.
   */
  stall(stalled: boolean): void;
  /** Terminates every connection and stops listening; idempotent. */
  close(): Promise<void>;
}

interface Peer {
  readonly ws: WebSocket;
  authenticated: boolean;
  closing: boolean;
  readonly topics: Set<string>;
  /** Type mask of the `<type>.*` subscriptions. */
  wild: number;
  /** Symbols subscribed one by one, per event type. */
  readonly symbols: Map<string, Set<string>>;
  authTimer: NodeJS.Timeout | undefined;
}

const status = (value: string, message: string) => ({ ev: 'status', status: value, message });
const TEXT = { binary: false } as const;

/**
 * Starts a Massive-protocol server: `connected` on connect, `auth` with `auth_success` or
 * `auth_failed` (then an abrupt close), `auth_timeout`, `auth_required` before auth, one `success`
 * per subscribed topic in one frame, `error` for topics not entitled, one connection per account
 * (the newest wins, the older gets `max_connections` and is closed), and the slow-consumer cut.
 */
export async function createMassiveServer(
  options: MassiveServerOptions = {},
): Promise<MassiveServer> {
  const wss = new WebSocketServer({
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 0,
    perMessageDeflate: false,
  });
  await once(wss, 'listening');
  const peers = new Set<Peer>();
  const waiters = new Set<() => void>();
  let connections = 0;
  const stats: MassiveServerStats = {
    framesSent: 0,
    eventsSent: 0,
    bytesSent: 0,
    framesFiltered: 0,
    slowConsumerCloses: 0,
    stalledEvents: 0,
  };
  let stalled = false;
  const notify = (): void => waiters.forEach((check) => check());
  const streaming = (p: Peer): boolean => p.authenticated && !p.closing && p.topics.size > 0;
  const subscribers = (): number => count(peers, streaming);
  const protocol = createProtocol(options, peers, notify);
  const slowBytes = options.slowConsumerBytes ?? 64 * 1024 * 1024;

  const deliver = (peer: Peer, data: Buffer | string, events: number): void => {
    if (stalled) {
      stats.stalledEvents += events;
      return;
    }
    peer.ws.send(data, TEXT);
    stats.framesSent++;
    stats.eventsSent += events;
    stats.bytesSent += data.length;
    if (peer.ws.bufferedAmount <= slowBytes) return;
    stats.slowConsumerCloses++;
    protocol.sendAndClose(
      peer,
      [status('slow_consumer', 'Slow consumer: the client did not keep up with the feed.')],
      false,
    );
    setTimeout(() => peer.ws.terminate(), options.slowConsumerGraceMs ?? 1000).unref();
  };

  wss.on('connection', (ws) => {
    connections++;
    const peer = protocol.accept(ws);
    peers.add(peer);
    ws.on('message', (data) => protocol.handle(peer, data));
    ws.on('close', () => {
      clearTimeout(peer.authTimer);
      peers.delete(peer);
      notify();
    });
    ws.on('error', () => {
      // A client vanishing mid-frame is ordinary; 'close' follows and cleans up.
    });
  });

  const port = (wss.address() as AddressInfo).port;
  let closed: Promise<void> | undefined;
  return {
    url: `ws://${options.host ?? '127.0.0.1'}:${port}`,
    port,
    get clients() {
      return count(peers, (p) => p.authenticated);
    },
    get connections() {
      return connections;
    },
    stats,
    waitForSubscribers: (wanted = 1, timeoutMs = 5000) =>
      waitFor(
        waiters,
        () => subscribers() >= wanted,
        timeoutMs,
        () => `${subscribers()} of ${wanted} subscribers after ${timeoutMs} ms`,
      ),
    broadcast(frame) {
      let messages: unknown[] | undefined;
      for (const peer of peers) {
        if (!streaming(peer)) continue;
        if ((frame.types & ~peer.wild) === 0) {
          deliver(peer, frame.data, frame.events);
          continue;
        }
        messages ??= parseFrame(frame.data);
        stats.framesFiltered++;
        const kept = messages.filter((message) => wanted(peer, message));
        if (kept.length > 0) deliver(peer, JSON.stringify(kept), kept.length);
      }
    },
    async drained(bytes) {
      const full = (): boolean =>
        [...peers].some((p) => streaming(p) && p.ws.bufferedAmount > bytes);
      while (full()) await new Promise((resolve) => setTimeout(resolve, 1));
    },
    send(frame) {
      if (Buffer.isBuffer(frame)) {
        for (const peer of peers) if (streaming(peer)) peer.ws.send(frame, TEXT);
        return;
      }
      const text = typeof frame === 'string' ? frame : JSON.stringify(frame);
      for (const peer of peers) if (streaming(peer)) peer.ws.send(text);
    },
    sendStatus(value, message = value, close = false) {
      for (const peer of peers) {
        if (!peer.authenticated) continue;
        if (close) protocol.sendAndClose(peer, [status(value, message)], false);
        else peer.ws.send(JSON.stringify([status(value, message)]));
      }
    },
    dropConnections() {
      for (const peer of peers) peer.ws.terminate();
    },
    stall(on) {
      stalled = on;
    },
    close: () =>
      (closed ??= new Promise<void>((resolve, reject) => {
        for (const peer of peers) peer.ws.terminate();
        wss.close((error) => (error === undefined ? resolve() : reject(error)));
      })),
  };
}

/** The messages of a recorded frame; a frame that is not a JSON array holds none to replay. */
function parseFrame(data: Buffer): unknown[] {
  try {
    const parsed: unknown = JSON.parse(data.toString('utf8'));
    return Array.isArray(parsed) ? parsed : [];
  } catch {
    return [];
  }
}

/** Whether `peer` subscribed to `message`: its type wholesale, or its symbol. Recorded statuses are never replayed. */
function wanted(peer: Peer, message: unknown): boolean {
  if (typeof message !== 'object' || message === null) return false;
  const { ev, sym, T } = message as { ev?: unknown; sym?: unknown; T?: unknown };
  const bit = typeBit(ev);
  if (bit === STATUS_BIT) return false;
  if ((peer.wild & bit) !== 0) return true;
  const ticker = typeof sym === 'string' ? sym : T;
  return typeof ticker === 'string' && peer.symbols.get(ev as string)?.has(ticker) === true;
}

/** Splits `T.AAPL` into its type and symbol (`*` for all); undefined for a malformed topic. */
function parseTopic(topic: string): { type: string; symbol: string } | undefined {
  const dot = topic.indexOf('.');
  if (dot <= 0 || dot === topic.length - 1) return undefined;
  return { type: topic.slice(0, dot), symbol: topic.slice(dot + 1) };
}

interface Protocol {
  accept(ws: WebSocket): Peer;
  handle(peer: Peer, data: RawData): void;
  sendAndClose(peer: Peer, frame: unknown[], abrupt: boolean): void;
}

function createProtocol(
  options: MassiveServerOptions,
  peers: ReadonlySet<Peer>,
  notify: () => void,
): Protocol {
  const apiKey = options.apiKey ?? 'test-key';
  const entitled = options.entitled ?? (() => true);
  const answered = options.answered ?? (() => true);
  const reply = (peer: Peer, frame: unknown[]): void => peer.ws.send(JSON.stringify(frame));

  const sendAndClose = (peer: Peer, frame: unknown[], abrupt: boolean): void => {
    peer.authenticated = false;
    peer.closing = true;
    clearTimeout(peer.authTimer);
    peer.ws.send(JSON.stringify(frame), () => (abrupt ? peer.ws.terminate() : peer.ws.close(1000)));
    notify();
  };

  const authenticate = (peer: Peer, key: unknown): void => {
    if (key !== apiKey)
      return sendAndClose(peer, [status('auth_failed', 'authentication failed')], true);
    clearTimeout(peer.authTimer);
    for (const other of peers) {
      if (other === peer || !other.authenticated) continue;
      sendAndClose(
        other,
        [status('max_connections', 'Maximum number of connections exceeded.')],
        false,
      );
    }
    peer.authenticated = true;
    reply(peer, [status('auth_success', 'authenticated')]);
    notify();
  };

  const track = (peer: Peer, topic: string, add: boolean): void => {
    const parsed = parseTopic(topic);
    if (parsed === undefined) return;
    const bit = typeBit(parsed.type);
    if (bit === STATUS_BIT) return;
    if (parsed.symbol === '*') {
      peer.wild = add ? peer.wild | bit : peer.wild & ~bit;
      return;
    }
    let symbols = peer.symbols.get(parsed.type);
    if (symbols === undefined) peer.symbols.set(parsed.type, (symbols = new Set()));
    if (add) symbols.add(parsed.symbol);
    else symbols.delete(parsed.symbol);
  };

  const subscribe = (peer: Peer, params: unknown, add: boolean): void => {
    if (!peer.authenticated) return reply(peer, [status('auth_required', 'please authenticate')]);
    const topics = typeof params === 'string' ? params.split(',').map((t) => t.trim()) : [];
    const acks = topics
      .filter((topic) => topic !== '' && answered(topic))
      .map((topic) => {
        if (add && !entitled(topic)) return status('error', `not authorized: ${topic}`);
        if (add) peer.topics.add(topic);
        else peer.topics.delete(topic);
        track(peer, topic, add);
        return status('success', `${add ? 'subscribed' : 'unsubscribed'} to: ${topic}`);
      });
    if (acks.length > 0) reply(peer, acks);
    notify();
  };

  return {
    accept(ws) {
      const peer: Peer = {
        ws,
        authenticated: false,
        closing: false,
        topics: new Set(),
        wild: 0,
        symbols: new Map(),
        authTimer: undefined,
      };
      reply(peer, [status('connected', 'Connected Successfully')]);
      peer.authTimer = setTimeout(() => {
        sendAndClose(peer, [status('auth_timeout', 'no authentication received')], false);
      }, options.authTimeoutMs ?? 10_000).unref();
      return peer;
    },
    handle(peer, data) {
      let parsed: unknown;
      try {
        parsed = JSON.parse((data as Buffer).toString('utf8'));
      } catch {
        // Bad input is answered, as the real server does, not thrown.
        parsed = undefined;
      }
      if (typeof parsed !== 'object' || parsed === null) {
        return reply(peer, [status('error', 'invalid message')]);
      }
      const message = parsed as { action?: unknown; params?: unknown };
      if (message.action === 'auth') authenticate(peer, message.params);
      else if (message.action === 'subscribe') subscribe(peer, message.params, true);
      else if (message.action === 'unsubscribe') subscribe(peer, message.params, false);
      else reply(peer, [status('error', 'unknown action')]);
    },
    sendAndClose,
  };
}

function count<T>(items: Iterable<T>, predicate: (item: T) => boolean): number {
  let n = 0;
  for (const item of items) if (predicate(item)) n++;
  return n;
}

function waitFor(
  waiters: Set<() => void>,
  ready: () => boolean,
  timeoutMs: number,
  describe: () => string,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (!ready()) return;
      finish();
      resolve();
    };
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`massive test server: ${describe()}`));
    }, timeoutMs);
    const finish = (): void => {
      clearTimeout(timer);
      waiters.delete(check);
    };
    waiters.add(check);
    check();
  });
}
