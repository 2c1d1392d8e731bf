import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { createNames, type ConnectionOptions } from '../../core/index.ts';
import { createHttpApp, listen, type HealthSource } from '../../cli/http.ts';
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
  log: Logger;
  /** Serves `/metrics` (the process's telemetry); none when absent. */
  metrics?: HealthSource['metrics'];
}

/**
 * A feed-only server (`openbell feed`): the trader page, `/ws`, and the health endpoints, with
 * no listener and no analyzer. Feeds keep no state, so any number can run behind a load balancer.
 */
export function createFeedServer(options: FeedServerOptions) {
  const { log } = options;
  const startedAtMs = Date.now();
  const feed = createFeed({
    redisUrl: options.connection.redisUrl,
    names: createNames({ namespace: options.connection.namespace }),
    log: log.child({ component: 'feed' }),
    secret: options.feed.secret,
    insecure: options.feed.insecure,
    limits: options.feed.limits,
    allowedOrigins: options.feed.allowedOrigins,
    top: options.top,
  });
  let server: Server | undefined;
  let ready = false;
  let started: Promise<void> | undefined;
  let closed: Promise<void> | undefined;
  const health = (): Record<string, unknown> => ({
    status: ready ? 'ok' : 'degraded',
    uptimeSeconds: Math.round((Date.now() - startedAtMs) / 1000),
    feed: feed.stats(),
  });
  return {
    start: () =>
      (started ??= (async () => {
        const app = createHttpApp({ ready: () => ready, health, metrics: options.metrics });
        servePage(app);
        server = await listen(app, options.http.host, options.http.port);
        await feed.start();
        // Upgrades only once the feed's Redis connections are up.
        feed.attach(server);
        ready = true;
        log.info(
          { host: options.http.host, port: (server.address() as AddressInfo).port },
          'feed listening',
        );
      })()),
    close: () =>
      (closed ??= (async () => {
        ready = false;
        await feed.close();
        await new Promise<void>((resolve) =>
          server === undefined ? resolve() : server.close(() => resolve()),
        );
      })()),
    health,
    get port(): number {
      return server === undefined ? 0 : (server.address() as AddressInfo).port;
    },
    get server(): Server | undefined {
      return server;
    },
  };
}
