import { Command, Option } from 'commander';
import {
  DEFAULT_TOPICS,
  MASSIVE_CLIENT_DEFAULTS,
  MASSIVE_STOCKS_URL,
  parseTransportOptions,
} from '../../core/index.ts';
import { adminOptions, parseAdminFlags, type AdminFlags } from '../../cli/http.ts';
import {
  analyzerOptions,
  connectionOptions,
  deliveryOption,
  stateDegradedOption,
  integer,
  parseBoardFlags,
  parseConnectionFlags,
  type AnalyzerFlags,
  type ConnectionFlags,
} from '../../cli/options.ts';
import { createRootLogger, runService } from '../../cli/run-service.ts';
import {
  startProcessTelemetry,
  telemetryOptions,
  type TelemetryFlags,
} from '../../cli/telemetry.ts';
import { createMdp } from './app.ts';
import { feedOptions, parseFeedFlags, type FeedFlags } from './feed-options.ts';
import type { PrevCloseSource } from './prev-close.ts';

interface MdpFlags
  extends ConnectionFlags, AnalyzerFlags, FeedFlags, AdminFlags, Partial<TelemetryFlags> {
  feed: boolean;
  massiveWsUrl: string;
  massiveApiKey?: string;
  topics: string;
  massiveStallTimeoutMs: number;
  massiveStallHours: 'session' | 'always';
  massiveBackoffResetMs: number;
  applyStallMs: number;
  stateDegradedMs: number;
  host: string;
  port: number;
  analyzer: boolean;
  batchMaxEvents: number;
  batchMaxDelayMs: number;
  bufferMaxEvents: number;
  delivery: 'persistent' | 'transient';
  massiveRestUrl: string;
  prevCloseFile?: string;
  prevCloseDate?: string;
  prevCloseFetch: boolean;
}

/** `openbell mdp`: the listener, an optional in-process analyzer, and the HTTP health endpoints. */
export function mdpCommand(): Command {
  const command = new Command('mdp').description(
    'Run the market-data server: Massive WebSocket listener → RabbitMQ, optional in-process analyzer, the trader page and feed (/, /ws; servers/mdp/FEED.md), /health, /healthz, /readyz.',
  );
  command
    .addOption(
      new Option('--massive-ws-url <url>', 'Massive (or replayer) WebSocket URL')
        .env('MASSIVE_WS_URL')
        .default(MASSIVE_STOCKS_URL),
    )
    .addOption(
      new Option('--massive-api-key <key>', 'Massive API key (required; never logged)').env(
        'MASSIVE_API_KEY',
      ),
    )
    .addOption(
      new Option('--topics <list>', 'comma-separated subscriptions')
        .env('MASSIVE_TOPICS')
        .default(DEFAULT_TOPICS.join(',')),
    )
    .addOption(
      new Option(
        '--massive-stall-timeout-ms <ms>',
        'a connection with no data this long while the market is open is stalled: dropped, counted and reconnected (0: never)',
      )
        .env('MASSIVE_STALL_TIMEOUT_MS')
        .argParser(integer)
        .default(MASSIVE_CLIENT_DEFAULTS.stallTimeoutMs),
    )
    .addOption(
      new Option(
        '--massive-stall-hours <when>',
        'when silence can be a stall: "session" (04:00-20:00 ET on trading days) or "always" (a replayer, the lab)',
      )
        .env('MASSIVE_STALL_HOURS')
        .choices(['session', 'always'])
        .default('session'),
    )
    .addOption(
      new Option(
        '--massive-backoff-reset-ms <ms>',
        'reconnect delays start over only after a connection streamed this long',
      )
        .env('MASSIVE_BACKOFF_RESET_MS')
        .argParser(integer)
        .default(MASSIVE_CLIENT_DEFAULTS.backoffResetMs),
    );
  for (const option of connectionOptions()) command.addOption(option);
  command
    .addOption(
      new Option('--host <host>', 'HTTP bind address').env('MDP_HOST').default('127.0.0.1'),
    )
    .addOption(
      new Option('--port <port>', 'HTTP port (0: any free port)')
        .env('MDP_PORT')
        .argParser(integer)
        .default(8080),
    )
    .addOption(
      new Option(
        '--no-analyzer',
        'do not run an analyzer in this process (lba processes do the work)',
      ).env('MDP_NO_ANALYZER'),
    );
  for (const option of adminOptions('MDP')) command.addOption(option);
  for (const option of analyzerOptions()) command.addOption(option);
  command.addOption(
    new Option(
      '--apply-stall-ms <ms>',
      'not ready (/readyz 503) while the analyzer holds batches and no apply has succeeded for this long',
    )
      .env('OPENBELL_APPLY_STALL_MS')
      .argParser(integer)
      .default(10_000),
  );
  command.addOption(stateDegradedOption());
  const t = parseTransportOptions();
  command
    .addOption(
      new Option('--batch-max-events <n>', 'events per published batch')
        .env('OPENBELL_BATCH_MAX_EVENTS')
        .argParser(integer)
        .default(t.batchMaxEvents),
    )
    .addOption(
      new Option('--batch-max-delay-ms <ms>', 'longest an event waits for its batch')
        .env('OPENBELL_BATCH_MAX_DELAY_MS')
        .argParser(integer)
        .default(t.batchMaxDelayMs),
    )
    .addOption(
      new Option(
        '--buffer-max-events <n>',
        'events buffered while the broker is slow; past it the oldest drop (counted)',
      )
        .env('OPENBELL_BUFFER_MAX_EVENTS')
        .argParser(integer)
        .default(t.bufferMaxEvents),
    )
    .addOption(deliveryOption())
    .addOption(
      new Option('--massive-rest-url <url>', 'Massive REST API for previous closes')
        .env('MASSIVE_REST_URL')
        .default('https://api.massive.com'),
    )
    .addOption(
      new Option(
        '--prev-close-file <path>',
        'previous closes from a file (grouped daily bars, or {"SYM": close})',
      ).env('OPENBELL_PREV_CLOSE_FILE'),
    )
    .addOption(
      new Option(
        '--prev-close-date <YYYY-MM-DD>',
        'trading date the file serves (default: current or next session)',
      ).env('OPENBELL_PREV_CLOSE_DATE'),
    )
    .addOption(
      new Option('--no-prev-close-fetch', 'do not fetch previous closes from the REST API').env(
        'OPENBELL_NO_PREV_CLOSE_FETCH',
      ),
    )
    .addOption(
      new Option('--no-feed', 'do not serve the trader page and feed (/, /ws)').env('MDP_NO_FEED'),
    );
  for (const option of feedOptions()) command.addOption(option);
  for (const option of telemetryOptions(false)) command.addOption(option);
  command.action(async (flags: MdpFlags) => {
    const log = createRootLogger('openbell-mdp');
    if (flags.massiveApiKey === undefined || flags.massiveApiKey === '') {
      command.error('error: MASSIVE_API_KEY (or --massive-api-key) is required');
    }
    const apiKey = flags.massiveApiKey!;
    const prevCloses: PrevCloseSource =
      flags.prevCloseFile !== undefined
        ? {
            kind: 'file',
            path: flags.prevCloseFile,
            ...(flags.prevCloseDate === undefined ? {} : { date: flags.prevCloseDate }),
          }
        : flags.prevCloseFetch
          ? { kind: 'rest', apiKey, baseUrl: flags.massiveRestUrl }
          : { kind: 'none' };
    const telemetry = await startProcessTelemetry('mdp', flags, log, process.env);
    const mdp = createMdp({
      massive: {
        url: flags.massiveWsUrl,
        apiKey,
        topics: flags.topics
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean),
        stallTimeoutMs: flags.massiveStallTimeoutMs,
        backoffResetMs: flags.massiveBackoffResetMs,
        ...(flags.massiveStallHours === 'always' ? { sessionOpen: () => true } : {}),
      },
      connection: parseConnectionFlags(flags),
      transport: parseTransportOptions({
        queueTtlMs: flags.queueTtlMs,
        queueMaxLength: flags.queueMaxLength,
        prefetch: flags.prefetch,
        batchMaxEvents: flags.batchMaxEvents,
        batchMaxDelayMs: flags.batchMaxDelayMs,
        bufferMaxEvents: flags.bufferMaxEvents,
        delivery: flags.delivery,
      }),
      board: parseBoardFlags(flags),
      analyzer: flags.analyzer,
      applyStallMs: flags.applyStallMs,
      stateGuard: { degradedMs: flags.stateDegradedMs },
      group: flags.group,
      http: { host: flags.host, port: flags.port },
      admin: parseAdminFlags(flags),
      prevCloses,
      feed: flags.feed ? parseFeedFlags(flags) : undefined,
      log,
      metrics: telemetry.telemetry.metricsHandler,
      // A refused API key will not fix itself: stop, and say why, with a failing exit status.
      onFatal: (error) => {
        process.stderr.write(`openbell mdp: ${error.message}\n`);
        void mdp
          .close()
          .finally(() => telemetry.close())
          .finally(() => process.exit(1));
      },
    });
    await runService(
      telemetry.around(mdp, () => mdp.adminServer ?? mdp.server),
      log,
    );
  });
  return command;
}
