import { Command, Option } from 'commander';
import cluster from 'node:cluster';
import type { Logger } from 'pino';
import { DEFAULTS, parseConnectionOptions } from '../../core/index.ts';
import { integer } from '../../cli/options.ts';
import { createRootLogger, runService } from '../../cli/run-service.ts';
import { feedOptions, parseFeedFlags, type FeedFlags } from './feed-options.ts';
import { createFeedServer } from './feed-server.ts';

interface FeedCommandFlags extends FeedFlags {
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
  command
    .addOption(
      new Option('--redis-url <url>', 'Redis URL')
        .env('REDIS_URL')
        .default(DEFAULTS.connection.redisUrl),
    )
    .addOption(
      new Option('--namespace <name>', 'prefix of every Redis key')
        .env('OPENBELL_NAMESPACE')
        .default(DEFAULTS.connection.namespace),
    )
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
  for (const option of feedOptions()) command.addOption(option);
  command.action(async (flags: FeedCommandFlags) => {
    const log = createRootLogger('openbell-feed');
    if (flags.processes < 1) throw new Error('feed: --processes must be at least 1');
    if (flags.processes > 1 && cluster.isPrimary) {
      superviseFeeds(flags.processes, log);
      return;
    }
    const connection = parseConnectionOptions({
      redisUrl: flags.redisUrl,
      namespace: flags.namespace,
    });
    const server = createFeedServer({
      connection,
      feed: parseFeedFlags(flags),
      top: flags.top,
      http: { host: flags.host, port: flags.port },
      log,
    });
    await runService(server, log);
  });
  return command;
}

/**
 * The primary of `--processes N`: forks N feed processes that share the listening port (the
 * primary hands out connections), replaces one that dies, and on SIGINT/SIGTERM stops them all
 * (each closes its clients with 1001) before exiting.
 */
function superviseFeeds(processes: number, log: Logger): void {
  let stopping = false;
  for (let n = 0; n < processes; n++) cluster.fork();
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
      return;
    }
    log.error({ pid: worker.process.pid, code, signal }, 'feed process died: starting another');
    setTimeout(() => cluster.fork(), 1000).unref();
  });
  const stop = (signal: string): void => {
    if (stopping) process.exit(130);
    stopping = true;
    log.info({ signal }, 'stopping the feed processes');
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
    setTimeout(() => process.exit(1), 20_000).unref();
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  log.info({ processes }, 'feed processes started');
}
