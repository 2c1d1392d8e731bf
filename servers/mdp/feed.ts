import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { Redis } from 'ioredis';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import {
  ConfigError,
  FEED_BEARER_PREFIX,
  FEED_CLOSE,
  FEED_SUBPROTOCOL,
  assertFeedSecret,
  channelAllowed,
  parseChannel,
  parseClientMessage,
  parseFeedLimits,
  verifyFeedToken,
  type FeedClaims,
  type FeedClientMessage,
  type FeedErrorCode,
  type FeedLimits,
  type Names,
  createDurationHistogram,
  createLinkRing,
  openbellMeter,
  openbellTracer,
} from '../../core/index.ts';
import { observeFeed } from './feed-metrics.ts';
import { encodeUpdateParts, frameUpdates, type UpdateParts } from './feed-fanout.ts';
import { createFeedHub, type FeedGroup, type FeedHub } from './feed-hub.ts';

/** Options of {@link createFeed}. */
export interface FeedOptions {
  redisUrl: string;
  names: Names;
  log: Logger;
  /** HS256 secret of the tokens; required unless `insecure`. */
  secret?: string | undefined;
  /** Accept clients without a token (the lab; never production). @default false */
  insecure?: boolean;
  /** Most rows a board subscription gets (what the analyzers publish). @default 20 */
  top?: number;
  limits?: Partial<FeedLimits>;
  /** Origins allowed besides the page's own host. */
  allowedOrigins?: readonly string[];
  /** Path of the WebSocket. @default /ws */
  path?: string;
}

/** Counters of a feed instance. */
export interface FeedStats {
  clients: number;
  connections: number;
  rejected: { origin: number; perIp: number; path: number };
  authFailures: number;
  handshakeTimeouts: number;
  messagesIn: number;
  messagesOut: number;
  bytesOut: number;
  snapshots: number;
  updates: number;
  /** Updates a slow client did not get (it got a fresh snapshot once it drained). */
  conflations: number;
  slowCloses: number;
  abuseCloses: number;
  deadPeers: number;
  errors: Partial<Record<FeedErrorCode, number>>;
  ticks: number;
  tickErrors: number;
  /** Duration of the last tick (Redis reads and fan-out), ms. */
  lastTickMs: number;
  /** Board updates from pub/sub (and dropped malformed ones), reloads, symbol reads. */
  hub?: FeedHub<unknown>['stats'];
}

/** The trader feed (servers/mdp/FEED.md): attach it to an HTTP server, then start it. */
export interface Feed {
  /** Handles WebSocket upgrades on the feed's path; other paths get 404. */
  attach(server: Server): void;
  start(): Promise<void>;
  /** Closes every client (1001), stops the ticks and the Redis connections; idempotent. */
  close(): Promise<void>;
  stats(): FeedStats;
}

interface Client {
  ws: WebSocket;
  /** The TCP socket under `ws`: a tick's updates are written to it directly, in one write. */
  socket: Duplex;
  ip: string;
  claims: FeedClaims | 'insecure' | undefined;
  subs: Map<string, Sub>;
  seq: number;
  tokens: number;
  refilledAt: number;
  limitedSecond: number;
  limitedInSecond: number;
  alive: boolean;
  /** Pending: the authentication deadline, the token's expiry, the cut after a close. */
  handshake: NodeJS.Timeout | undefined;
  expiry: NodeJS.Timeout | undefined;
  cut: NodeJS.Timeout | undefined;
}

interface Sub {
  client: Client;
  group: FeedGroup<Sub>;
  seq: number;
  /** Its snapshot has been sent: updates may follow. */
  ready: boolean;
  /** Updates were held back (slow client): a snapshot is due once it drains. */
  stale: boolean;
}

/** How long a closed connection may take to finish its close handshake before it is cut. */
const CLOSE_GRACE_MS = 2000;

/** Longest a timer may wait (setTimeout's limit). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Creates the feed; throws ConfigError without a usable secret unless insecure. */
export function createFeed(options: FeedOptions): Feed {
  const { names, log } = options;
  const limits = parseFeedLimits(options.limits);
  const insecure = options.insecure === true;
  const secret = options.secret ?? '';
  assertFeedAuth(options);

  const maxTop = options.top ?? 20;
  const path = options.path ?? '/ws';
  const allowedOrigins = new Set(options.allowedOrigins ?? []);
  const redis = new Redis(options.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2 });
  const subscriber = new Redis(options.redisUrl, { lazyConnect: true });
  for (const connection of [redis, subscriber])
    connection.on('error', (error: Error) => log.debug({ err: error.message }, 'feed redis'));
  const traces = createLinkRing();
  const hub = createFeedHub<Sub>({ redis, subscriber, names, log, traces });
  const tickSeconds = createDurationHistogram(
    openbellMeter(),
    'openbell_feed_tick_duration_seconds',
    'One fan-out tick: Redis reads, diffs, writes',
  );
  const tracer = openbellTracer();
  let unobserve: (() => void) | undefined;
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: limits.maxMessageBytes,
    handleProtocols: (offered) => (offered.has(FEED_SUBPROTOCOL) ? FEED_SUBPROTOCOL : false),
  });
  const clients = new Set<Client>();
  const perIp = new Map<string, number>();
  const stale = new Set<Sub>();
  const stats: FeedStats = {
    clients: 0,
    connections: 0,
    rejected: { origin: 0, perIp: 0, path: 0 },
    authFailures: 0,
    handshakeTimeouts: 0,
    messagesIn: 0,
    messagesOut: 0,
    bytesOut: 0,
    snapshots: 0,
    updates: 0,
    conflations: 0,
    slowCloses: 0,
    abuseCloses: 0,
    deadPeers: 0,
    errors: {},
    ticks: 0,
    tickErrors: 0,
    lastTickMs: 0,
  };
  let tickTimer: NodeJS.Timeout | undefined;
  let heartbeatTimer: NodeJS.Timeout | undefined;
  let started: Promise<void> | undefined;
  let closed: Promise<void> | undefined;

  const send = (client: Client, text: string): void => {
    const ws = client.ws;
    if (ws.readyState !== WebSocket.OPEN) return;
    if (ws.bufferedAmount > limits.hardLimitBytes) {
      closeSlow(client);
      return;
    }
    ws.send(text);
    stats.messagesOut++;
    stats.bytesOut += text.length;
  };

  const control = (client: Client, type: 'ack' | 'error' | 'heartbeat', data: unknown): void =>
    send(client, envelope(type, '', ++client.seq, Date.now(), JSON.stringify(data)));

  const error = (
    client: Client,
    code: FeedErrorCode,
    message: string,
    extra: Record<string, unknown> = {},
  ): void => {
    stats.errors[code] = (stats.errors[code] ?? 0) + 1;
    control(client, 'error', { code, message, ...extra });
  };

  const closeWith = (client: Client, code: number, reason: string): void => {
    const ws = client.ws;
    if (ws.readyState === WebSocket.CLOSED) return;
    ws.close(code, reason);
    // A peer that does not read never sees the close frame: cut it after a grace period.
    client.cut ??= setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
  };

  const closeSlow = (client: Client): void => {
    if (client.ws.readyState !== WebSocket.OPEN) return;
    stats.slowCloses++;
    closeWith(client, FEED_CLOSE.tryAgainLater, 'client too slow');
  };

  const snapshot = (sub: Sub): void => {
    sub.ready = true;
    sub.stale = false;
    stats.snapshots++;
    const { group } = sub;
    send(sub.client, envelope('snapshot', group.channel, ++sub.seq, Date.now(), group.snapshot!));
  };

  const authenticate = async (client: Client, token: string): Promise<boolean> => {
    const result = await verifyFeedToken(secret, token);
    if ('failure' in result) {
      stats.authFailures++;
      closeWith(
        client,
        FEED_CLOSE.unauthorized,
        result.failure === 'expired' ? 'token expired' : 'invalid token',
      );
      return false;
    }
    // A new token (a refresh) replaces the old one: its expiry and its allow-list.
    client.claims = result;
    if (client.handshake !== undefined) clearTimeout(client.handshake);
    armExpiry(client, result.exp * 1000);
    for (const channel of [...client.subs.keys()]) {
      if (channelAllowed(result, channel)) continue;
      leave(client, channel);
      error(client, 'forbidden_channel', `the new token does not allow ${channel}`, { channel });
    }
    return true;
  };

  /** Closes the connection when its token expires (in steps: timers wait at most ~24.8 days). */
  const armExpiry = (client: Client, expMs: number): void => {
    if (client.expiry !== undefined) clearTimeout(client.expiry);
    const wait = expMs - Date.now();
    client.expiry = setTimeout(
      () =>
        wait > MAX_TIMER_MS
          ? armExpiry(client, expMs)
          : closeWith(client, FEED_CLOSE.unauthorized, 'token expired'),
      Math.min(MAX_TIMER_MS, Math.max(0, wait)),
    ).unref();
  };

  const subscribe = async (
    client: Client,
    message: Extract<FeedClientMessage, { op: 'subscribe' }>,
  ): Promise<void> => {
    const top = Math.min(message.top ?? maxTop, maxTop);
    const echo = message.id === undefined ? {} : { id: message.id };
    const accepted: { channel: string; spec: NonNullable<ReturnType<typeof parseChannel>> }[] = [];
    for (const channel of new Set(message.channels)) {
      const spec = parseChannel(channel);
      if (spec === undefined) {
        error(client, 'unknown_channel', `no such channel: ${channel.slice(0, 64)}`, {
          channel,
          ...echo,
        });
      } else if (client.claims !== 'insecure' && !channelAllowed(client.claims!, channel)) {
        error(client, 'forbidden_channel', `the token does not allow ${channel}`, {
          channel,
          ...echo,
        });
      } else if (!client.subs.has(channel) && client.subs.size >= limits.maxSubscriptions) {
        error(
          client,
          'too_many_subscriptions',
          `at most ${limits.maxSubscriptions} channels per connection`,
          { channel, ...echo },
        );
      } else {
        // Resubscribing (e.g. with another top, or after a gap) replaces the subscription.
        leave(client, channel);
        accepted.push({ channel, spec });
        client.subs.set(channel, placeholder(client));
      }
    }
    if (accepted.length === 0) return;
    control(client, 'ack', {
      op: 'subscribe',
      channels: accepted.map((a) => a.channel),
      top,
      ...echo,
    });
    for (const { channel, spec } of accepted) {
      const sub = client.subs.get(channel);
      // Unsubscribed, or the connection closed, while an earlier snapshot was read.
      if (sub === undefined) continue;
      try {
        sub.group = await hub.join(spec, channel, top, sub);
      } catch (err) {
        log.warn({ err, channel }, 'feed snapshot read failed');
        if (client.subs.get(channel) === sub) client.subs.delete(channel);
        error(client, 'unavailable', `no snapshot of ${channel} now: subscribe again`, {
          channel,
          ...echo,
        });
        continue;
      }
      // Unsubscribed or gone while the snapshot was read.
      if (client.subs.get(channel) !== sub || client.ws.readyState !== WebSocket.OPEN) {
        hub.leave(sub.group, sub);
        continue;
      }
      snapshot(sub);
    }
  };

  const leave = (client: Client, channel: string): boolean => {
    const sub = client.subs.get(channel);
    if (sub === undefined) return false;
    client.subs.delete(channel);
    stale.delete(sub);
    if (sub.group !== PENDING) hub.leave(sub.group, sub);
    return true;
  };

  const allow = (client: Client): boolean => {
    const now = performance.now();
    client.tokens = Math.min(
      limits.messagesBurst,
      client.tokens + ((now - client.refilledAt) / 1000) * limits.messagesPerSecond,
    );
    client.refilledAt = now;
    if (client.tokens >= 1) {
      client.tokens -= 1;
      return true;
    }
    const second = Math.floor(now / 1000);
    if (second !== client.limitedSecond) {
      client.limitedSecond = second;
      client.limitedInSecond = 0;
    }
    if (++client.limitedInSecond > limits.abuseMessagesPerSecond) {
      stats.abuseCloses++;
      closeWith(client, FEED_CLOSE.policy, 'message rate abuse');
    } else if (client.limitedInSecond === 1) {
      // One error per second: telling a flooding client more would amplify the flood.
      error(client, 'rate_limited', `at most ${limits.messagesPerSecond} messages per second`);
    }
    return false;
  };

  const onMessage = async (client: Client, data: RawData, isBinary: boolean): Promise<void> => {
    // Whatever arrives after the feed decided to close is ignored.
    if (client.ws.readyState !== WebSocket.OPEN) return;
    stats.messagesIn++;
    if (!allow(client)) return;
    if (isBinary) {
      error(client, 'bad_message', 'messages are JSON text');
      return;
    }
    const parsed = parseClientMessage(rawText(data));
    if (!('message' in parsed)) {
      error(client, parsed.code, parsed.detail, parsed.id === undefined ? {} : { id: parsed.id });
      return;
    }
    const message = parsed.message;
    const echo = message.id === undefined ? {} : { id: message.id };
    if (message.op === 'auth') {
      if (insecure) control(client, 'ack', { op: 'auth', sub: null, ...echo });
      else if (await authenticate(client, message.token)) {
        const claims = client.claims as FeedClaims;
        control(client, 'ack', { op: 'auth', sub: claims.sub, exp: claims.exp, ...echo });
      }
      return;
    }
    if (client.claims === undefined) {
      error(client, 'not_authenticated', 'send {"op":"auth","token":…} first', echo);
      return;
    }
    if (message.op === 'ping') control(client, 'ack', { op: 'ping', ...echo });
    else if (message.op === 'subscribe') await subscribe(client, message);
    else {
      const removed = message.channels.filter((channel) => leave(client, channel));
      control(client, 'ack', { op: 'unsubscribe', channels: removed, ...echo });
    }
  };

  const onConnection = (
    ws: WebSocket,
    socket: Duplex,
    request: IncomingMessage,
    ip: string,
  ): void => {
    const client: Client = {
      ws,
      socket,
      ip,
      claims: insecure ? 'insecure' : undefined,
      subs: new Map(),
      seq: 0,
      tokens: limits.messagesBurst,
      refilledAt: performance.now(),
      limitedSecond: 0,
      limitedInSecond: 0,
      alive: true,
      handshake: undefined,
      expiry: undefined,
      cut: undefined,
    };
    clients.add(client);
    perIp.set(ip, (perIp.get(ip) ?? 0) + 1);
    stats.clients = clients.size;
    stats.connections++;
    // Messages are handled one after another: a subscribe's snapshot reads finish before the next.
    let queue = Promise.resolve();
    ws.on('message', (data, isBinary) => {
      queue = queue
        .then(() => onMessage(client, data, isBinary))
        .catch((err: unknown) => log.warn({ err }, 'feed message failed'));
    });
    ws.on('pong', () => {
      client.alive = true;
    });
    ws.on('error', (err) => log.debug({ err: err.message, ip }, 'feed client error'));
    ws.on('close', () => {
      for (const channel of [...client.subs.keys()]) leave(client, channel);
      for (const timer of [client.handshake, client.expiry, client.cut]) clearTimeout(timer);
      clients.delete(client);
      stats.clients = clients.size;
      const left = (perIp.get(ip) ?? 1) - 1;
      if (left > 0) perIp.set(ip, left);
      else perIp.delete(ip);
    });
    if (insecure) return;
    const token = bearerOf(request);
    if (token !== undefined) {
      queue = queue
        .then(async () => {
          if (await authenticate(client, token)) {
            const claims = client.claims as FeedClaims;
            control(client, 'ack', { op: 'auth', sub: claims.sub, exp: claims.exp });
          }
        })
        .catch((err: unknown) => log.warn({ err }, 'feed authentication failed'));
      return;
    }
    client.handshake = setTimeout(() => {
      if (client.claims !== undefined) return;
      stats.handshakeTimeouts++;
      closeWith(client, FEED_CLOSE.unauthorized, 'authentication timeout');
    }, limits.handshakeTimeoutMs).unref();
  };

  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const url = new URL(request.url ?? '/', 'http://feed');
    if (url.pathname !== path) {
      stats.rejected.path++;
      return refuse(socket, 404, 'Not Found');
    }
    const origin = request.headers.origin;
    if (origin !== undefined && !originAllowed(origin, request.headers.host, allowedOrigins)) {
      stats.rejected.origin++;
      return refuse(socket, 403, 'Forbidden');
    }
    const ip = request.socket.remoteAddress ?? 'unknown';
    // Counted once connected: a handshake that fails never reaches onConnection.
    if ((perIp.get(ip) ?? 0) >= limits.maxConnectionsPerIp) {
      stats.rejected.perIp++;
      return refuse(socket, 429, 'Too Many Requests');
    }
    wss.handleUpgrade(request, socket, head, (ws) => onConnection(ws, socket, request, ip));
  };

  /**
   * Sends a tick's updates client by client, each client's in one write of ready-made frames:
   * every update is encoded once per tick (see feed-fanout.ts), and a client's frames go straight
   * to its socket. That is safe beside ws's own sends because the feed never compresses or sends
   * Blobs, so ws writes every frame synchronously and never holds one back to send later.
   */
  const deliver = (changed: readonly FeedGroup<Sub>[]): void => {
    if (changed.length > 0) {
      const ts = Date.now();
      const parts = new Map<FeedGroup<Sub>, UpdateParts>();
      for (const group of changed)
        parts.set(group, encodeUpdateParts(group.channel, ts, group.update!));
      const due: UpdateParts[] = [];
      const seqs: number[] = [];
      for (const client of clients) {
        const ws = client.ws;
        if (ws.readyState !== WebSocket.OPEN) continue;
        const slow = ws.bufferedAmount > limits.softLimitBytes;
        let count = 0;
        for (const sub of client.subs.values()) {
          const part = parts.get(sub.group);
          if (part === undefined || !sub.ready || sub.stale) continue;
          if (slow) {
            sub.stale = true;
            stale.add(sub);
            stats.conflations++;
            continue;
          }
          due[count] = part;
          seqs[count++] = ++sub.seq;
        }
        if (count === 0) continue;
        const frames = frameUpdates(due, seqs, count);
        client.socket.write(frames);
        stats.messagesOut += count;
        stats.updates += count;
        stats.bytesOut += frames.length;
      }
    }
    for (const sub of stale) {
      const ws = sub.client.ws;
      if (ws.readyState !== WebSocket.OPEN) stale.delete(sub);
      else if (ws.bufferedAmount > limits.hardLimitBytes) closeSlow(sub.client);
      else if (ws.bufferedAmount <= limits.softLimitBytes) {
        stale.delete(sub);
        snapshot(sub);
      } else if (changed.includes(sub.group)) {
        stats.conflations++;
      }
    }
  };

  const tick = async (): Promise<void> => {
    const begun = performance.now();
    // A tick that sends traced board updates continues the newest publication's trace.
    const links = traces.take();
    const span =
      links.length === 0
        ? undefined
        : tracer.startSpan(
            'openbell.feed tick',
            {
              kind: SpanKind.PRODUCER,
              links,
              attributes: { 'openbell.feed.clients': clients.size },
            },
            trace.setSpanContext(context.active(), links.at(-1)!.context),
          );
    try {
      deliver(await hub.tick());
      stats.ticks++;
    } catch (err) {
      stats.tickErrors++;
      span?.setStatus({ code: SpanStatusCode.ERROR, message: String(err) });
      log.warn({ err }, 'feed tick failed');
    }
    span?.end();
    stats.lastTickMs = performance.now() - begun;
    tickSeconds.record(stats.lastTickMs / 1000);
    if (closed === undefined) {
      tickTimer = setTimeout(() => void tick(), Math.max(0, limits.cadenceMs - stats.lastTickMs));
    }
  };

  const heartbeat = (): void => {
    for (const client of clients) {
      if (client.ws.readyState !== WebSocket.OPEN) continue;
      if (!client.alive) {
        stats.deadPeers++;
        client.ws.terminate();
        continue;
      }
      client.alive = false;
      client.ws.ping();
      if (client.claims !== undefined) control(client, 'heartbeat', {});
    }
  };

  const feed: Feed = {
    attach(server) {
      server.on('upgrade', onUpgrade);
    },
    start() {
      return (started ??= (async () => {
        await Promise.all([redis.connect(), subscriber.connect()]);
        await hub.start();
        unobserve = observeFeed(openbellMeter(), () => feed.stats());
        tickTimer = setTimeout(() => void tick(), limits.cadenceMs);
        heartbeatTimer = setInterval(heartbeat, limits.heartbeatMs);
        heartbeatTimer.unref();
        log.info({ path, insecure, cadenceMs: limits.cadenceMs }, 'feed started');
        if (insecure)
          log.warn('feed is insecure: anyone who reaches it gets the boards without a token');
      })());
    },
    close() {
      return (closed ??= (async () => {
        if (tickTimer !== undefined) clearTimeout(tickTimer);
        if (heartbeatTimer !== undefined) clearInterval(heartbeatTimer);
        for (const client of clients)
          closeWith(client, FEED_CLOSE.goingAway, 'server shutting down');
        // Clients that do not read are cut after the grace period; then nothing is left.
        const deadline = Date.now() + CLOSE_GRACE_MS + 500;
        while (clients.size > 0 && Date.now() < deadline)
          await new Promise((resolve) => setTimeout(resolve, 20));
        for (const client of clients) client.ws.terminate();
        await new Promise<void>((resolve) => wss.close(() => resolve()));
        await hub.close().catch(() => undefined);
        redis.disconnect();
        subscriber.disconnect();
        unobserve?.();
      })());
    },
    stats: () => ({
      ...stats,
      rejected: { ...stats.rejected },
      errors: { ...stats.errors },
      hub: { ...hub.stats },
    }),
  };
  return feed;
}

/** Throws ConfigError unless the feed has a usable secret or is explicitly insecure. */
export function assertFeedAuth(options: Pick<FeedOptions, 'secret' | 'insecure'>): void {
  if (options.insecure === true) return;
  const secret = options.secret ?? '';
  if (secret === '')
    throw new ConfigError('feed.secret', 'required (FEED_JWT_SECRET), or run with --feed-insecure');
  assertFeedSecret(secret);
}

/** Marks a subscription whose group is still being joined. */
const PENDING = {} as FeedGroup<Sub>;

function placeholder(client: Client): Sub {
  return { client, group: PENDING, seq: 0, ready: false, stale: false };
}

function envelope(type: string, channel: string, seq: number, ts: number, data: string): string {
  return `{"type":"${type}","channel":${JSON.stringify(channel)},"seq":${seq},"ts":${ts},"data":${data}}`;
}

function rawText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

/** The token of a `Sec-WebSocket-Protocol: openbell.v1, bearer.<token>` header. */
function bearerOf(request: IncomingMessage): string | undefined {
  const header = request.headers['sec-websocket-protocol'];
  if (header === undefined) return undefined;
  for (const part of header.split(',')) {
    const value = part.trim();
    if (value.startsWith(FEED_BEARER_PREFIX)) return value.slice(FEED_BEARER_PREFIX.length);
  }
  return undefined;
}

/** The page's own host, or a listed origin; browsers always send Origin, other clients may not. */
function originAllowed(origin: string, host: string | undefined, allowed: Set<string>): boolean {
  if (allowed.has(origin) || allowed.has('*')) return true;
  try {
    return host !== undefined && new URL(origin).host === host;
  } catch {
    return false;
  }
}

function refuse(socket: Duplex, status: number, text: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
}
