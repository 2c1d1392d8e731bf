import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';

/** Options of {@link createMassiveTestServer}. */
export interface MassiveTestServerOptions {
  /** The one key `auth` accepts. @default 'test-key' */
  apiKey?: string;
  /** A connection not authenticated by then gets `auth_timeout` and is closed. @default 10000 */
  authTimeoutMs?: number;
  /** Whether the account may subscribe to `topic`; if not, an `error` status. @default all */
  entitled?: (topic: string) => boolean;
  /** Whether a subscription to `topic` is answered at all (Massive ignores unknown prefixes). @default all */
  answered?: (topic: string) => boolean;
}

/** A loopback WebSocket server speaking the Massive stocks protocol, for tests. */
export interface MassiveTestServer {
  /** `ws://127.0.0.1:<port>`. */
  readonly url: string;
  /** Authenticated, connected clients. */
  readonly clients: number;
  /** Connections accepted since the start, authenticated or not. */
  readonly connections: number;
  /** Resolves once `count` authenticated clients have subscribed; rejects after `timeoutMs`. */
  waitForSubscribers(count?: number, timeoutMs?: number): Promise<void>;
  /** Sends a frame to every subscribed client; a string is sent as it is (malformed on purpose). */
  send(frame: unknown[] | string): void;
  /** Sends a status to every authenticated client, then closes them when `close` is set. */
  sendStatus(status: string, message?: string, close?: boolean): void;
  /** Terminates every connection without a close handshake (clients see 1006). */
  dropConnections(): void;
  /** Terminates every connection and stops listening; idempotent. */
  close(): Promise<void>;
}

interface Peer {
  readonly ws: WebSocket;
  authenticated: boolean;
  readonly topics: Set<string>;
  authTimer: NodeJS.Timeout | undefined;
}

const status = (value: string, message: string) => ({ ev: 'status', status: value, message });

/**
 * Starts a Massive-protocol server on a free loopback port: `connected` on connect, `auth` with
 * `auth_success` or `auth_failed` (then an abrupt close), `auth_timeout`, `auth_required` before
 * auth, one `success` per subscribed topic in one frame, `error` for topics not entitled, and one
 * connection per account (the newest wins, the older gets `max_connections` and is closed).
 */
export async function createMassiveTestServer(
  options: MassiveTestServerOptions = {},
): Promise<MassiveTestServer> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  const peers = new Set<Peer>();
  const waiters = new Set<() => void>();
  let connections = 0;
  const notify = (): void => waiters.forEach((check) => check());
  const subscribers = (): number => count(peers, (p) => p.authenticated && p.topics.size > 0);
  const protocol = createProtocol(options, peers, notify);

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
      // A client vanishing mid-frame is what tests do on purpose; 'close' follows and cleans up.
    });
  });

  let closed: Promise<void> | undefined;
  return {
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`,
    get clients() {
      return count(peers, (p) => p.authenticated);
    },
    get connections() {
      return connections;
    },
    waitForSubscribers: (wanted = 1, timeoutMs = 5000) =>
      waitFor(
        waiters,
        () => subscribers() >= wanted,
        timeoutMs,
        () => {
          return `${subscribers()} of ${wanted} subscribers after ${timeoutMs} ms`;
        },
      ),
    send(frame) {
      const text = typeof frame === 'string' ? frame : JSON.stringify(frame);
      for (const peer of peers) if (peer.authenticated && peer.topics.size > 0) peer.ws.send(text);
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
    close: () =>
      (closed ??= new Promise<void>((resolve, reject) => {
        for (const peer of peers) peer.ws.terminate();
        wss.close((error) => (error === undefined ? resolve() : reject(error)));
      })),
  };
}

interface Protocol {
  accept(ws: WebSocket): Peer;
  handle(peer: Peer, data: RawData): void;
  sendAndClose(peer: Peer, frame: unknown[], abrupt: boolean): void;
}

function createProtocol(
  options: MassiveTestServerOptions,
  peers: ReadonlySet<Peer>,
  notify: () => void,
): Protocol {
  const apiKey = options.apiKey ?? 'test-key';
  const entitled = options.entitled ?? (() => true);
  const answered = options.answered ?? (() => true);
  const reply = (peer: Peer, frame: unknown[]): void => peer.ws.send(JSON.stringify(frame));

  const sendAndClose = (peer: Peer, frame: unknown[], abrupt: boolean): void => {
    peer.authenticated = false;
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

  const subscribe = (peer: Peer, params: unknown, add: boolean): void => {
    if (!peer.authenticated) return reply(peer, [status('auth_required', 'please authenticate')]);
    const topics = typeof params === 'string' ? params.split(',').map((t) => t.trim()) : [];
    const acks = topics
      .filter((topic) => topic !== '' && answered(topic))
      .map((topic) => {
        if (add && !entitled(topic)) return status('error', `not authorized: ${topic}`);
        if (add) peer.topics.add(topic);
        else peer.topics.delete(topic);
        return status('success', `${add ? 'subscribed' : 'unsubscribed'} to: ${topic}`);
      });
    if (acks.length > 0) reply(peer, acks);
    notify();
  };

  return {
    accept(ws) {
      const peer: Peer = { ws, authenticated: false, topics: new Set(), authTimer: undefined };
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
