import { Redis } from 'ioredis';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import {
  createHealthMonitor,
  createNames,
  createRedisHealth,
  createStateGuard,
  observeHealth,
  observeStateGuard,
  openbellMeter,
  type ConnectionOptions,
  type StateGuardOptions,
} from '../../core/index.ts';
import {
  closeServer,
  createHttpApp,
  listen,
  type AdminAddress,
  type HealthSource,
} from '../../cli/http.ts';
import { createFeed } from './feed.ts';
import type { FeedConfig } from './feed-options.ts';
import { servePage } from './page.ts';

/** Options of {@link createFeedServer}. */
export interface FeedServerOptions {
  connection: Pick<ConnectionOptions, 'redisUrl' | 'namespace'>;
  feed: FeedConfig;
  /** Rows per board the analyzers publish (the most a trader can ask for). */
  top: number;
  http: { host: string; port: number };
  /** Serve the health endpoints and `/metrics` here; the HTTP port then serves the page and `/ws`. */
  admin?: AdminAddress | undefined;
  log: Logger;
  /** Serves `/metrics` (the process's telemetry); none when absent. */
  metrics?: HealthSource['metrics'];
  /** The check for a Redis that lost its state (core/state-guard.ts). @default its defaults */
  stateGuard?: Pick<StateGuardOptions, 'intervalMs' | 'degradedMs'>;
}

/**
 * A feed-only server (`openbell feed`): the trader page, `/ws`, and the health endpoints, with
 * no listener and no analyzer. Feeds keep no state, so any number can run behind a load balancer.
 */
export function createFeedServer(options: FeedServerOptions) {
  const { log } = options;
  const startedAtMs = Date.now();
  const names = createNames({ namespace: options.connection.namespace });
  const feed = createFeed({
    redisUrl: options.connection.redisUrl,
    names,
    log: log.child({ component: 'feed' }),
    secret: options.feed.secret,
    insecure: options.feed.insecure,
    limits: options.feed.limits,
    allowedOrigins: options.feed.allowedOrigins,
    top: options.top,
  });
  // The feed's own connections live in feed.ts; reachability is watched on one of its own.
  const redis = new Redis(options.connection.redisUrl, { lazyConnect: true });
  redis.on('error', (error: Error) => log.debug({ err: error.message }, 'health redis'));
  const redisHealth = createRedisHealth({ redis });
  // A feed restores nothing after a state loss (the analyzers and the mdp do): it reports it.
  const guard = createStateGuard({
    redis,
    names,
    log: log.child({ component: 'state' }),
    ...options.stateGuard,
  });
  const monitor = createHealthMonitor({
    checks: { redis: redisHealth.check, state: guard.check },
    log: log.child({ component: 'health' }),
  });
  let server: Server | undefined;
  let adminServer: Server | undefined;
  let listening = false;
  let closing = false;
  let unobserve: (() => void) | undefined;
  let unobserveGuard: (() => void) | undefined;
  let started: Promise<void> | undefined;
  let closed: Promise<void> | undefined;
  const ready = (): boolean => listening && !closing && monitor.ok();
  const reason = (): string =>
    closing ? 'shutting down' : listening ? monitor.reason() : 'starting';
  const health = (): Record<string, unknown> => ({
    status: closing ? 'stopping' : ready() ? 'ok' : 'degraded',
    dependencies: monitor.dependencies(),
    uptimeSeconds: Math.round((Date.now() - startedAtMs) / 1000),
    feed: feed.stats(),
    state: guard.stats,
  });
  return {
    start: () =>
      (started ??= (async () => {
        const source: HealthSource = { ready, reason, health, metrics: options.metrics };
        unobserve = observeHealth(openbellMeter(), { monitor, ready });
        unobserveGuard = observeStateGuard(openbellMeter(), guard);
        monitor.start();
        redisHealth.start();
        const { admin } = options;
        if (admin !== undefined) {
          adminServer = await listen(createHttpApp(source), admin.host, admin.port);
          const { port } = adminServer.address() as AddressInfo;
          log.info({ host: admin.host, port }, 'admin listening (health and metrics)');
        }
        const app = createHttpApp(admin === undefined ? source : undefined);
        servePage(app);
        server = await listen(app, options.http.host, options.http.port);
        await redis.connect();
        await guard.checkNow();
        guard.start();
        await feed.start();
        // Upgrades only once the feed's Redis connections are up.
        feed.attach(server);
        listening = true;
        log.info(
          { host: options.http.host, port: (server.address() as AddressInfo).port },
          'feed listening',
        );
      })()),
    close: () =>
      (closed ??= (async () => {
        closing = true;
        await feed.close();
        unobserve?.();
        unobserveGuard?.();
        guard.close();
        monitor.close();
        redisHealth.close();
        redis.disconnect();
        await closeServer(server);
        await closeServer(adminServer);
      })()),
    health,
    get port(): number {
      return server === undefined ? 0 : (server.address() as AddressInfo).port;
    },
    get server(): Server | undefined {
      return server;
    },
    /** The admin server (with `admin`); the health endpoints are on `server` otherwise. */
    get adminServer(): Server | undefined {
      return adminServer;
    },
  };
}
