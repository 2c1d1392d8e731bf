import { Redis } from 'ioredis';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import {
  createAnalyzer,
  createBatchPublisher,
  listenerLedger,
  createApplyCheck,
  createBoardStore,
  createDecodeCounts,
  createHealthMonitor,
  createListener,
  createMassiveClient,
  createNames,
  createRateMeter,
  createRedisHealth,
  createStateGuard,
  declareAnalyzerQueue,
  observeHealth,
  observeListener,
  observeStateGuard,
  openbellMeter,
  redactUrl,
  restoreLatestDate,
  type Analyzer,
  type BoardOptions,
  type ConnectionOptions,
  type DependencyCheck,
  type MassiveClientOptions,
  type StateGuardOptions,
  type TransportOptions,
} from '../../core/index.ts';
import {
  closeServer,
  createHttpApp,
  listen,
  type AdminAddress,
  type HealthSource,
} from '../../cli/http.ts';
import { createFeed, type Feed } from './feed.ts';
import type { FeedConfig } from './feed-options.ts';
import { servePage } from './page.ts';
import { schedulePrevCloses, type PrevCloseSchedule, type PrevCloseSource } from './prev-close.ts';

/** The Massive client's tuning the mdp passes on (stall detection, backoff, clock). */
export type MdpMassiveTuning = Pick<
  MassiveClientOptions,
  | 'stallTimeoutMs'
  | 'sessionOpen'
  | 'backoffInitialMs'
  | 'backoffMaxMs'
  | 'backoffResetMs'
  | 'maxConnectionsCooldownMs'
  | 'random'
  | 'now'
>;

/** Options of {@link createMdp}. */
export interface MdpOptions {
  massive: { url: string; apiKey: string; topics: readonly string[] } & MdpMassiveTuning;
  connection: ConnectionOptions;
  transport: TransportOptions;
  board: BoardOptions;
  /** Run an analyzer in this process (off when `lba` processes do the work). */
  analyzer: boolean;
  /** Not ready while the analyzer holds batches and no apply has succeeded this long. @default 10000 */
  applyStallMs?: number;
  group: string;
  http: { host: string; port: number };
  /**
   * Serve `/health`, `/healthz`, `/readyz` and `/metrics` on this address instead of the trader
   * port, which then serves only the page and `/ws`. @default the trader port
   */
  admin?: AdminAddress | undefined;
  prevCloses: PrevCloseSource;
  /**
   * The check for a Redis that lost its state (core/state-guard.ts): how often, and how long
   * `/health` stays degraded after a loss at least. @default its defaults (1 s, 30 s)
   */
  stateGuard?: Pick<StateGuardOptions, 'intervalMs' | 'degradedMs' | 'restoreRetryMs'>;
  /** Serve the trader page and feed (`/`, `/ws`); off when absent. */
  feed?: FeedConfig | undefined;
  log: Logger;
  /** Serves `/metrics` (the process's telemetry); none when absent. */
  metrics?: HealthSource['metrics'];
  /** Called once when the feed cannot go on (e.g. Massive refused the API key). */
  onFatal?(error: Error): void;
}

/** The scale-up server: listener, optional in-process analyzer, and HTTP health endpoints. */
export interface Mdp {
  start(): Promise<void>;
  close(): Promise<void>;
  health(): Record<string, unknown>;
  /** The HTTP port actually bound (after start). */
  readonly port: number;
  /** The HTTP server (after start). */
  readonly server: Server | undefined;
  /** The admin server (after start, with `admin`); the health endpoints are on `server` otherwise. */
  readonly adminServer: Server | undefined;
}

/** Wires the mdp from its options; nothing connects before `start()`. */
export function createMdp(options: MdpOptions): Mdp {
  const { log, connection, transport, board } = options;
  const names = createNames({ namespace: connection.namespace });
  const startedAtMs = Date.now();
  const decodeCounts = createDecodeCounts();
  const publisher = createBatchPublisher({
    url: connection.amqpUrl,
    names,
    log: log.child({ component: 'publisher' }),
    persistent: transport.delivery === 'persistent',
  });
  const listener = createListener({
    publisher,
    log: log.child({ component: 'listener' }),
    ...transport,
  });
  const client = createMassiveClient({
    ...options.massive,
    log: log.child({ component: 'massive' }),
    decodeCounts,
    onEvents: (events, receivedAtMs) => listener.push(events, receivedAtMs),
    takeFrame: (frame, receivedAtMs) => listener.pushFrame(frame, receivedAtMs),
  });
  let massiveDetail: string | undefined;
  client.onStateChange((state, detail) => {
    massiveDetail = detail;
    if (state !== 'failed') return;
    const error = client.error ?? new Error('the Massive feed failed');
    log.error({ err: error.message }, 'massive feed failed; not retrying');
    options.onFatal?.(error);
  });
  const redis = new Redis(connection.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2 });
  redis.on('error', (error: Error) => log.debug({ err: error.message }, 'redis'));
  const store = createBoardStore({ redis, names, board });
  const analyzer: Analyzer | undefined = options.analyzer
    ? createAnalyzer({
        amqpUrl: connection.amqpUrl,
        redis,
        names,
        log: log.child({ component: 'analyzer' }),
        group: options.group,
        topology: { queueTtlMs: transport.queueTtlMs, queueMaxLength: transport.queueMaxLength },
        board,
        prefetch: transport.prefetch,
      })
    : undefined;
  const feed: Feed | undefined =
    options.feed === undefined
      ? undefined
      : createFeed({
          redisUrl: connection.redisUrl,
          names,
          log: log.child({ component: 'feed' }),
          secret: options.feed.secret,
          insecure: options.feed.insecure,
          limits: options.feed.limits,
          allowedOrigins: options.feed.allowedOrigins,
          top: board.top,
        });
  const meter = createRateMeter(() => ({
    frames: client.stats.frames,
    events: client.stats.events,
    bytes: client.stats.bytes,
    batchesPublished: publisher.stats.published,
    eventsApplied: analyzer?.stats.events ?? 0,
  }));
  const checks: Record<string, DependencyCheck> = {
    massive: () => ({
      ok: client.state === 'streaming',
      state: client.state,
      ...(client.state === 'streaming' || massiveDetail === undefined
        ? {}
        : { detail: massiveDetail }),
    }),
    rabbitmq: () => {
      const down = [
        ...(publisher.stats.connected ? [] : ['publisher']),
        ...(analyzer === undefined || analyzer.consumer.stats.connected ? [] : ['consumer']),
      ];
      return down.length === 0
        ? { ok: true, state: 'connected' }
        : { ok: false, state: 'disconnected', detail: `${down.join(' and ')} not connected` };
    },
  };
  // Redis is the analyzer's and the feed's to need; the listener alone does without it.
  const needsRedis = analyzer !== undefined || feed !== undefined;
  const redisHealth = createRedisHealth({ redis });
  if (needsRedis) checks['redis'] = redisHealth.check;
  // A Redis that lost its state is reported, and what this process holds is restored: the
  // previous closes it loaded (gappers refill) and the newest date its analyzer applied.
  const guarded = needsRedis || options.prevCloses.kind !== 'none';
  const guard = createStateGuard({
    redis,
    names,
    log: log.child({ component: 'state' }),
    ...options.stateGuard,
  });
  let prevCloses: PrevCloseSchedule | undefined;
  if (options.prevCloses.kind !== 'none')
    guard.onLoss('prev-close', () => prevCloses?.reload() ?? Promise.resolve());
  if (analyzer !== undefined)
    guard.onLoss(
      'latest-date',
      restoreLatestDate(redis, names, () => analyzer.latestDate),
    );
  if (needsRedis) checks['state'] = guard.check;
  if (analyzer !== undefined) {
    const { stats, consumer } = analyzer;
    checks['applies'] = createApplyCheck({
      staleMs: options.applyStallMs ?? 10_000,
      read: () => ({
        applied: stats.batches,
        failed: stats.applyErrors,
        held: consumer.stats.inFlight,
      }),
    });
  }
  const monitor = createHealthMonitor({ checks, log: log.child({ component: 'health' }) });
  let server: Server | undefined;
  let adminServer: Server | undefined;
  let unobserveHealth: (() => void) | undefined;
  let sampler: NodeJS.Timeout | undefined;
  let unobserve: (() => void) | undefined;
  let unobserveGuard: (() => void) | undefined;
  let closing = false;
  let started: Promise<void> | undefined;
  let closed: Promise<void> | undefined;

  const ready = (): boolean => !closing && server !== undefined && monitor.ok();
  const reason = (): string =>
    closing ? 'shutting down' : server === undefined ? 'starting' : monitor.reason();

  const health = (): Record<string, unknown> => ({
    status: closing ? 'stopping' : ready() ? 'ok' : 'degraded',
    dependencies: monitor.dependencies(),
    uptimeSeconds: Math.round((Date.now() - startedAtMs) / 1000),
    massive: {
      url: redactUrl(options.massive.url),
      state: client.state,
      error: client.error?.message,
      ...client.stats,
      lastFrameAgeMs:
        client.stats.lastFrameAtMs === undefined ? null : Date.now() - client.stats.lastFrameAtMs,
    },
    decodeIssues: Object.fromEntries(Object.entries(decodeCounts).filter(([, n]) => n > 0)),
    listener: listener.stats,
    publisher: publisher.stats,
    ledger: listenerLedger(listener.stats, publisher.stats),
    analyzer: analyzer === undefined ? null : analyzer.health(),
    feed: feed === undefined ? null : feed.stats(),
    state: guarded ? guard.stats : null,
    rates: meter.rates(),
  });

  return {
    start: () =>
      (started ??= (async () => {
        unobserve = observeListener(openbellMeter(), { client, listener, publisher, decodeCounts });
        unobserveHealth = observeHealth(openbellMeter(), { monitor, ready, massive: client });
        if (guarded) unobserveGuard = observeStateGuard(openbellMeter(), guard);
        monitor.start();
        if (needsRedis) redisHealth.start();
        const source: HealthSource = { ready, reason, health, metrics: options.metrics };
        const { admin } = options;
        if (admin !== undefined) {
          adminServer = await listen(createHttpApp(source), admin.host, admin.port);
          const { port } = adminServer.address() as AddressInfo;
          log.info({ host: admin.host, port }, 'admin listening (health and metrics)');
        }
        const app = createHttpApp(admin === undefined ? source : undefined);
        if (feed !== undefined) servePage(app);
        server = await listen(app, options.http.host, options.http.port);
        // A close() that arrives while starting wins: each step below checks it.
        log.info(
          { host: options.http.host, port: (server.address() as AddressInfo).port },
          'http listening',
        );
        sampler = setInterval(() => meter.sample(), 1000).unref();
        await redis.connect();
        if (guarded) {
          // The state this process starts from, before it writes anything.
          await guard.checkNow();
          guard.start();
        }
        await feed?.start();
        // Upgrades only once the feed's Redis connections are up (before, they are refused).
        feed?.attach(server);
        await publisher.start();
        if (closing) return;
        const topology = {
          queueTtlMs: transport.queueTtlMs,
          queueMaxLength: transport.queueMaxLength,
        };
        await declareAnalyzerQueue(connection.amqpUrl, names, options.group, topology);
        if (closing) return;
        await analyzer?.start();
        if (closing) return;
        prevCloses = schedulePrevCloses(
          options.prevCloses,
          store,
          log.child({ component: 'prev-close' }),
        );
        client.start();
      })()),
    close: () =>
      (closed ??= (async () => {
        closing = true;
        prevCloses?.cancel();
        guard.close();
        await client.close();
        await listener.close();
        await publisher.close();
        await analyzer?.close();
        await feed?.close();
        if (sampler !== undefined) clearInterval(sampler);
        unobserve?.();
        unobserveHealth?.();
        unobserveGuard?.();
        monitor.close();
        redisHealth.close();
        redis.disconnect();
        await closeServer(server);
        await closeServer(adminServer);
      })()),
    health,
    get port() {
      return server === undefined ? 0 : (server.address() as AddressInfo).port;
    },
    get server() {
      return server;
    },
    get adminServer() {
      return adminServer;
    },
  };
}
