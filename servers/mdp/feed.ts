import { context, SpanKind, SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { Redis } from 'ioredis';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocket, WebSocketServer } from 'ws';
import {
  ConfigError,
  FEED_CLOSE,
  FEED_SUBPROTOCOL,
  assertFeedSecret,
  parseFeedLimits,
  tickSlices,
  type FeedErrorCode,
  type FeedLimits,
  type Names,
  createDurationHistogram,
  createLinkRing,
  openbellMeter,
  openbellTracer,
} from '../../core/index.ts';
import { observeFeed } from './feed-metrics.ts';
import {
  CLOSE_GRACE_MS,
  closeWith,
  createClientWriter,
  holdsBack,
  type Client,
  type Sub,
} from './feed-client.ts';
import { READ_TIMEOUT_MS, createFeedHub, type FeedHub } from './feed-hub.ts';
import { createFeedGate } from './feed-gate.ts';
import { LOOPBACK, originAllowed, parseAllowedOrigins } from './feed-origin.ts';
import { createConnectionHandler } from './feed-session.ts';

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
  /**
   * Browser origins allowed to connect: exact origins, `loopback` (http(s) on localhost,
   * 127.0.0.1 or [::1], any port) or `*`. Clients that send no `Origin` (not browsers) are not
   * checked. Empty: the default. @default ['loopback']
   */
  allowedOrigins?: readonly string[];
  /** Path of the WebSocket. @default /ws */
  path?: string;
}

/** Counters of a feed instance. */
export interface FeedStats {
  clients: number;
  connections: number;
  /**
   * Connections refused: a foreign origin, the address or the token subject at its cap, a path
   * other than the feed's, request headers not sent in time.
   */
  rejected: {
    origin: number;
    perIp: number;
    perSubject: number;
    path: number;
    headerTimeout: number;
  };
  /** Connections that have not sent their request headers yet. */
  pendingHandshakes: number;
  /** Address buckets (IPv4 addresses, IPv6 /64s) holding a connection. */
  addresses: number;
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
  /** Ticks of every slice: `slices` of them per cadence. */
  ticks: number;
  /** Ticks and Redis reads that failed. */
  tickErrors: number;
  /** Epoch ms of the last Redis read (date or symbols) that succeeded (0: none yet). */
  lastReadAt: number;
  /** Duration of the last slice's tick (diffs and writes), ms. */
  lastTickMs: number;
  /** Clients in each tick slice. */
  slices?: number[];
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

/** Creates the feed; throws ConfigError without a usable secret unless insecure. */
export function createFeed(options: FeedOptions): Feed {
  const { names, log } = options;
  const limits = parseFeedLimits(options.limits);
  const insecure = options.insecure === true;
  const secret = options.secret ?? '';
  assertFeedAuth(options);

  const maxTop = options.top ?? 20;
  const path = options.path ?? '/ws';
  const origins = parseAllowedOrigins(
    options.allowedOrigins === undefined || options.allowedOrigins.length === 0
      ? [LOOPBACK]
      : options.allowedOrigins,
  );
  const redis = new Redis(options.redisUrl, {
    lazyConnect: true,
    maxRetriesPerRequest: 2,
    commandTimeout: READ_TIMEOUT_MS,
  });
  // No commandTimeout here: ioredis would reject its own resubscribe after a reconnect, uncaught.
  const subscriber = new Redis(options.redisUrl, { lazyConnect: true });
  for (const connection of [redis, subscriber])
    connection.on('error', (error: Error) => log.debug({ err: error.message }, 'feed redis'));
  const tickSeconds = createDurationHistogram(
    openbellMeter(),
    'openbell_feed_tick_duration_seconds',
    "One slice's tick: diffs and writes to the slice's clients",
  );
  // Beside the analyzers' calls: a slow feed read shows whether Redis was busy with them.
  const redisSeconds = createDurationHistogram(
    openbellMeter(),
    'openbell_redis_duration_seconds',
    'Redis call latency, by operation',
  );
  const clients = new Set<Client>();
  const slices = Array.from({ length: tickSlices(limits) }, () => new Set<Client>());
  const sliceMs = limits.cadenceMs / slices.length;
  // Every slice's tick sends a traced update, so each links to it.
  const traces = slices.map(() => createLinkRing());
  const hub = createFeedHub<Sub>({
    redis,
    subscriber,
    names,
    log,
    traces: { add: (spanContext) => traces.forEach((ring) => ring.add(spanContext)) },
    onRedisRead: (ms) => redisSeconds.record(ms / 1000, { op: 'feed_read' }),
  });
  const tracer = openbellTracer();
  let unobserve: (() => void) | undefined;
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: limits.maxMessageBytes,
    handleProtocols: (offered) => (offered.has(FEED_SUBPROTOCOL) ? FEED_SUBPROTOCOL : false),
  });
  const stale = new Set<Sub>();
  const stats: FeedStats = {
    clients: 0,
    connections: 0,
    rejected: { origin: 0, perIp: 0, perSubject: 0, path: 0, headerTimeout: 0 },
    pendingHandshakes: 0,
    addresses: 0,
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
    lastReadAt: 0,
    lastTickMs: 0,
  };
  let tickTimer: NodeJS.Timeout | undefined;
  /** The slice the next tick serves, when it is due, and when each slice last ticked (performance.now() ms). */
  let nextSlice = 0;
  let nextTickAt = 0;
  const lastTickAt = slices.map(() => -Infinity);
  let heartbeatTimer: NodeJS.Timeout | undefined;
  let started: Promise<void> | undefined;
  let closed: Promise<void> | undefined;

  const writer = createClientWriter({ limits, stats, stale });
  const onConnection = createConnectionHandler({
    limits,
    stats,
    log,
    hub,
    insecure,
    secret,
    maxTop,
    clients,
    slices,
    stale,
    writer,
  });
  const gate = createFeedGate({
    maxPerAddress: limits.maxConnectionsPerIp,
    headerTimeoutMs: limits.headerTimeoutMs,
    stats,
  });

  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    // Holds a place of its address from here until the socket closes (refused ones close).
    if (!gate.admit(request, socket)) return refuse(socket, 429, 'Too Many Requests');
    const url = new URL(request.url ?? '/', 'http://feed');
    if (url.pathname !== path) {
      stats.rejected.path++;
      return refuse(socket, 404, 'Not Found');
    }
    const origin = request.headers.origin;
    if (origin !== undefined && !originAllowed(origins, origin)) {
      stats.rejected.origin++;
      return refuse(socket, 403, 'Forbidden');
    }
    const ip = request.socket.remoteAddress ?? 'unknown';
    wss.handleUpgrade(request, socket, head, (ws) => onConnection(ws, socket, request, ip));
  };

  /**
   * Reads one at a time: `want(key)` starts `read` with every key wanted since the last read
   * began, or, while one is under way, keeps the key for the next (so a slow read never makes a
   * slice's symbols wait more than one read). A failure is counted; the read connection's command
   * timeout bounds how long one can hang.
   */
  const coalesced = <K>(what: string, read: (keys: K[]) => Promise<boolean>) => {
    const wanted = new Set<K>();
    let reading = false;
    const run = (): void => {
      if (reading || wanted.size === 0 || closed !== undefined) return;
      reading = true;
      const keys = [...wanted];
      wanted.clear();
      read(keys)
        .then((didRead) => {
          if (didRead) stats.lastReadAt = Date.now();
        })
        .catch((err: unknown) => {
          // Closing disconnects Redis under a read: that is no failure.
          if (closed !== undefined) return;
          stats.tickErrors++;
          log.warn({ err }, `feed ${what} read failed`);
        })
        .finally(() => {
          reading = false;
          run();
        });
    };
    return (key: K): void => {
      wanted.add(key);
      run();
    };
  };
  const readDate = coalesced('date', async () => {
    await hub.readDate();
    return true;
  });
  const readSymbols = coalesced('symbol', (wanted: number[]) => hub.readSymbols(wanted));

  /**
   * A slice's tick: sends the slice's clients what changed since their last tick, from memory, and
   * starts the reads the next ticks need: the date once per cadence, and the next slice's symbols.
   * It never waits on Redis: a slow read delays what it brings, never the slices' cadence.
   */
  const tick = (): void => {
    const begun = performance.now();
    const slice = nextSlice;
    nextSlice = (slice + 1) % slices.length;
    lastTickAt[slice] = begun;
    if (slice === 0) readDate(0);
    readSymbols(nextSlice);
    const links = traces[slice]!.take();
    let span: Span | undefined;
    try {
      const changed = hub.tick(slice);
      // A tick that sends board updates continues the newest publication's trace (the span
      // covers the writes).
      if (links.length > 0 && changed.some((group) => group.spec.kind === 'board'))
        span = tracer.startSpan(
          'openbell.feed tick',
          {
            kind: SpanKind.PRODUCER,
            links,
            attributes: {
              'openbell.feed.clients': slices[slice]!.size,
              'openbell.feed.slice': slice,
            },
          },
          trace.setSpanContext(context.active(), links.at(-1)!.context),
        );
      writer.deliver(changed, slices[slice]!);
      stats.ticks++;
    } catch (err) {
      stats.tickErrors++;
      span?.setStatus({ code: SpanStatusCode.ERROR, message: String(err) });
      log.warn({ err }, 'feed tick failed');
    }
    span?.end();
    stats.lastTickMs = performance.now() - begun;
    tickSeconds.record(stats.lastTickMs / 1000);
    if (closed === undefined) schedule();
  };

  /**
   * Due times advance by a slice from the last one, not from the tick's end, and a slice ticks no
   * sooner than a cadence after its previous tick began, so a channel never sends two updates
   * within a cadence. A tick's lateness (about a millisecond of timer delay) is therefore carried
   * into its slice's next one, never made up for.
   */
  const schedule = (): void => {
    nextTickAt = Math.max(
      nextTickAt + sliceMs,
      lastTickAt[nextSlice]! + limits.cadenceMs,
      performance.now(),
    );
    arm();
  };
  // A timer can fire up to a millisecond early: it then waits again for the rest.
  const arm = (): void => {
    tickTimer = setTimeout(
      () => (performance.now() < nextTickAt ? arm() : tick()),
      Math.max(1, nextTickAt - performance.now()),
    );
  };

  /** Pings everyone; one that missed the previous ping is slow if updates wait for it, else dead. */
  const heartbeat = (): void => {
    for (const client of clients) {
      if (client.ws.readyState !== WebSocket.OPEN) continue;
      if (!client.alive) {
        if (holdsBack(client)) {
          writer.closeSlow(client);
          continue;
        }
        stats.deadPeers++;
        client.ws.terminate();
        continue;
      }
      client.alive = false;
      client.ws.ping();
      if (client.claims !== undefined) writer.control(client, 'heartbeat', {});
    }
  };

  const feed: Feed = {
    attach(server) {
      gate.attach(server);
      server.on('upgrade', onUpgrade);
    },
    start() {
      return (started ??= (async () => {
        await Promise.all([redis.connect(), subscriber.connect()]);
        await hub.start();
        unobserve = observeFeed(openbellMeter(), () => feed.stats());
        nextTickAt = performance.now();
        schedule();
        heartbeatTimer = setInterval(heartbeat, limits.heartbeatMs);
        heartbeatTimer.unref();
        log.info(
          { path, insecure, cadenceMs: limits.cadenceMs, slices: slices.length },
          'feed started',
        );
        if (insecure)
          log.warn('feed is insecure: anyone who reaches it gets the boards without a token');
        if (slices.length < limits.slices)
          log.warn(
            { slices: slices.length, asked: limits.slices, cadenceMs: limits.cadenceMs },
            'feed slices cut to keep their ticks 5 ms apart',
          );
      })());
    },
    close() {
      return (closed ??= (async () => {
        if (tickTimer !== undefined) clearTimeout(tickTimer);
        if (heartbeatTimer !== undefined) clearInterval(heartbeatTimer);
        gate.close();
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
      pendingHandshakes: gate.pending(),
      addresses: gate.addresses(),
      errors: { ...stats.errors },
      slices: slices.map((slice) => slice.size),
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

/**
 * Answers an upgrade request with an HTTP error and closes the connection once it is written (one
 * already answered, by the gate, is just closed).
 */
function refuse(socket: Duplex, status: number, text: string): void {
  // Node has let go of an upgraded socket: an error now (a peer's reset) would be uncaught.
  socket.on('error', () => undefined);
  if (socket.writableEnded) {
    socket.destroy();
    return;
  }
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`, () =>
    socket.destroy(),
  );
}
