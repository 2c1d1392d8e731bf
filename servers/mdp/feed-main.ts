import { Command, Option } from 'commander';
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
    );
  for (const option of feedOptions()) command.addOption(option);
  command.action(async (flags: FeedCommandFlags) => {
    const log = createRootLogger('openbell-feed');
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
