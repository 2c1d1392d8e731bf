import { Command, Option } from 'commander';
import cluster from 'node:cluster';
import type { Logger } from 'pino';
import { DEFAULTS, parseConnectionOptions } from '../../core/index.ts';
import { adminOptions, parseAdminFlags, type AdminFlags } from '../../cli/http.ts';
import { connectionOptions, integer } from '../../cli/options.ts';
import { createRootLogger, runService } from '../../cli/run-service.ts';
import {
  startProcessTelemetry,
  telemetryOptions,
  type TelemetryFlags,
} from '../../cli/telemetry.ts';
import { feedOptions, parseFeedFlags, type FeedFlags } from './feed-options.ts';
import { assertFeedAuth } from './feed.ts';
import { createFeedServer } from './feed-server.ts';

interface FeedCommandFlags extends FeedFlags, AdminFlags, Partial<TelemetryFlags> {
  redisUrl: string;
  namespace: string;
  host: string;
  port: number;
  top: number;
  processes: number;
}

/** `openbell feed`: the trader page and feed alone, for running several behind a load balancer. */
export function feedCommand(): Command {
  const command = new Command('feed').description(
    'Serve the trader page and feed (/, /ws; servers/mdp/FEED.md) from Redis, with no listener or analyzer: run as many as needed behind a load balancer.',
  );
  // The feed reads Redis only: every connection option but the broker's.
  for (const option of connectionOptions())
    if (option.long !== '--amqp-url') command.addOption(option);
  command
    .addOption(
      new Option('--host <host>', 'HTTP bind address').env('FEED_HOST').default('127.0.0.1'),
    )
    .addOption(
      new Option('--port <port>', 'HTTP port (0: any free port)')
        .env('FEED_PORT')
        .argParser(integer)
        .default(8081),
    )
    .addOption(
      new Option('--top <n>', 'rows per board the analyzers publish (the most a trader gets)')
        .env('OPENBELL_TOP')
        .argParser(integer)
        .default(DEFAULTS.board.top),
    )
    .addOption(
      new Option(
        '--processes <n>',
        'feed processes sharing the port (node:cluster), each serving its share of traders',
      )
        .env('FEED_PROCESSES')
        .argParser(integer)
        .default(1),
    );
  for (const option of adminOptions('FEED')) command.addOption(option);
  for (const option of feedOptions()) command.addOption(option);
  for (const option of telemetryOptions(true)) command.addOption(option);
  command.action(async (flags: FeedCommandFlags) => {
    const log = createRootLogger('openbell-feed');
    if (flags.processes < 1) throw new Error('feed: --processes must be at least 1');
    const feed = parseFeedFlags(flags);
    if (flags.processes > 1 && cluster.isPrimary) {
      // Checked once here: N processes failing one by one would hide the reason.
      assertFeedAuth(feed);
      superviseFeeds(flags.processes, log);
      return;
    }
    const connection = parseConnectionOptions({
      redisUrl: flags.redisUrl,
      namespace: flags.namespace,
    });
    // Processes sharing a port would answer a scrape in turn: each gets its own metrics port.
    const clustered = flags.processes > 1;
    const telemetry = await startProcessTelemetry(
      'feed',
      clustered
        ? { ...flags, metricsPort: flags.metricsPort === undefined ? undefined : 0 }
        : flags,
      log,
      process.env,
    );
    const server = createFeedServer({
      connection,
      feed,
      top: flags.top,
      http: { host: flags.host, port: flags.port },
      admin: parseAdminFlags(flags),
      log,
      ...(clustered ? {} : { metrics: telemetry.telemetry.metricsHandler }),
    });
    // Clustered, the shared port serves no /metrics: only the metrics-only ports register.
    await runService(
      telemetry.around(server, () =>
        clustered ? undefined : (server.adminServer ?? server.server),
      ),
      log,
    );
  });
  return command;
}

/** Deaths within {@link DEATH_WINDOW_MS} after which the primary gives up. */
const MAX_DEATHS = 5;
const DEATH_WINDOW_MS = 60_000;

/**
 * The primary of `--processes N`: forks N feed processes that share the listening port (the
 * primary hands out connections) and replaces one that dies, with a growing delay, giving up (exit
 * 1) when they keep dying. SIGTERM is passed on; SIGINT from a terminal reaches the whole process
 * group, so the processes are only told again if they are still up a few seconds later.
 */
function superviseFeeds(processes: number, log: Logger): void {
  let stopping = false;
  const deaths: number[] = [];
  for (let n = 0; n < processes; n++) cluster.fork();
  const alive = () => Object.values(cluster.workers ?? {}).filter((w) => w !== undefined);
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      if (alive().length === 0) process.exit(0);
      return;
    }
    const now = Date.now();
    deaths.push(now);
    while (deaths.length > 0 && deaths[0]! < now - DEATH_WINDOW_MS) deaths.shift();
    if (deaths.length >= MAX_DEATHS) {
      log.error({ deaths: deaths.length }, 'feed processes keep dying: giving up');
      stopping = true;
      for (const w of alive()) w.process.kill('SIGTERM');
      setTimeout(() => process.exit(1), 5000).unref();
      if (alive().length === 0) process.exit(1);
      return;
    }
    const delayMs = 500 * 2 ** (deaths.length - 1);
    log.error(
      { pid: worker.process.pid, code, signal, delayMs },
      'feed process died: starting another',
    );
    setTimeout(() => {
      if (!stopping) cluster.fork();
    }, delayMs).unref();
  });
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) process.exit(130);
    stopping = true;
    log.info({ signal }, 'stopping the feed processes');
    const tell = () => {
      for (const w of alive()) w.process.kill('SIGTERM');
    };
    if (signal === 'SIGTERM') tell();
    else setTimeout(tell, 3000).unref();
    setTimeout(() => process.exit(1), 20_000).unref();
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  log.info({ processes }, 'feed processes started');
}
