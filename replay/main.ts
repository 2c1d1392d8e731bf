import { Command, Option } from 'commander';
import { createWriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DEFAULT_TOPICS,
  assertDate,
  createNames,
  openRecording,
  parseTransportOptions,
  redactUrl,
} from '../core/index.ts';
import {
  connectionOptions,
  deliveryOption,
  integer,
  parseConnectionFlags,
  type ConnectionFlags,
} from '../cli/options.ts';
import { createRootLogger } from '../cli/run-service.ts';
import { startProcessTelemetry, telemetryOptions, type TelemetryFlags } from '../cli/telemetry.ts';
import { formatInfo, recordingInfo } from './info.ts';
import { exportJsonl, importJsonl } from './jsonl.ts';
import { recordFromExchange, recordFromWebSocket } from './recorder.ts';
import { referenceForRecording } from './reference.ts';
import { sessionDateAt } from '../servers/mdp/prev-close.ts';
import { DEFAULT_ENCODE_WORKERS } from './broker-sink.ts';
import { serveReplay } from './serve.ts';
import { SYNTH_DEFAULTS } from './synth.ts';
import { writeSynth } from './scenario.ts';

const env = (name: string) => `OPENBELL_${name}`;

/** `openbell synth`: writes a deterministic synthetic market open as a recording. */
export function synthCommand(): Command {
  const d = SYNTH_DEFAULTS;
  return new Command('synth')
    .description(
      'Write a deterministic synthetic market-open session as a recording (see replay/SYNTH.md).',
    )
    .addOption(
      new Option('-o, --output <file>', 'recording to write')
        .env(env('SYNTH_OUTPUT'))
        .makeOptionMandatory(),
    )
    .addOption(new Option('--date <date>', 'trading date').env(env('SYNTH_DATE')).default(d.date))
    .addOption(
      new Option('--symbols <n>', 'listed symbols')
        .env(env('SYNTH_SYMBOLS'))
        .argParser(integer)
        .default(d.symbols),
    )
    .addOption(
      new Option('--from <HH:MM>', 'session start, New York time')
        .env(env('SYNTH_FROM'))
        .default(d.from),
    )
    .addOption(
      new Option('--to <HH:MM>', 'session end, New York time').env(env('SYNTH_TO')).default(d.to),
    )
    .addOption(
      new Option('--seed <n>', 'seed: same seed, same bytes')
        .env(env('SYNTH_SEED'))
        .argParser(integer)
        .default(d.seed),
    )
    .addOption(
      new Option('--peak-trades <n>', 'market-wide trades/s at the top of the opening burst')
        .env(env('SYNTH_PEAK_TRADES'))
        .argParser(integer)
        .default(d.peakTradesPerSec),
    )
    .addOption(new Option('--force', 'overwrite an existing file').env(env('SYNTH_FORCE')))
    .action(async (flags: SynthFlags) => {
      const started = performance.now();
      const totals = await writeSynth(
        flags.output,
        {
          date: flags.date,
          symbols: flags.symbols,
          from: flags.from,
          to: flags.to,
          seed: flags.seed,
          peakTradesPerSec: flags.peakTrades,
        },
        flags.force === true,
      );
      const seconds = (performance.now() - started) / 1000;
      process.stdout.write(
        `${flags.output}: ${totals.frames} frames, ${totals.events} events, ${(totals.bytes / totals.events).toFixed(1)} B/event, in ${seconds.toFixed(1)} s\n`,
      );
    });
}

interface SynthFlags {
  output: string;
  date: string;
  symbols: number;
  from: string;
  to: string;
  seed: number;
  peakTrades: number;
  force?: boolean;
}

interface RecordFlags extends ConnectionFlags {
  from?: string;
  tap?: boolean;
  bindings: string;
  output?: string;
  apiKey?: string;
  topics: string;
  duration?: number;
  force?: boolean;
  date?: string;
  prevCloseFile?: string;
  prevClose: boolean;
  massiveRestUrl: string;
}

/** `openbell record`: records a feed, or imports, exports and describes recordings. */
export function recordCommand(): Command {
  const command = new Command('record')
    // `record import -o …` has its own -o: options after a subcommand belong to it.
    .enablePositionalOptions()
    .description(
      'Record a Massive-protocol feed (--from) or the events exchange (--tap) to a recording; or import, export and describe recordings.',
    )
    .addOption(
      new Option('--from <url>', 'Massive-protocol WebSocket to record').env(env('RECORD_FROM')),
    )
    .addOption(
      new Option('--tap', 'record the RabbitMQ events exchange instead').env(env('RECORD_TAP')),
    )
    .addOption(
      new Option('--bindings <keys>', 'routing keys the tap binds (comma-separated)')
        .env(env('RECORD_BINDINGS'))
        .default('#'),
    )
    .addOption(new Option('-o, --output <file>', 'recording to write').env(env('RECORD_OUTPUT')))
    .addOption(
      new Option('--api-key <key>', 'API key of the feed (never logged)').env('MASSIVE_API_KEY'),
    )
    .addOption(
      new Option('--topics <list>', 'subscriptions')
        .env('MASSIVE_TOPICS')
        .default(DEFAULT_TOPICS.join(',')),
    )
    .addOption(
      new Option('--duration <seconds>', 'stop after this long (default: until SIGINT/SIGTERM)')
        .env(env('RECORD_DURATION'))
        .argParser(integer),
    )
    .addOption(new Option('--force', 'overwrite an existing file').env(env('RECORD_FORCE')))
    .addOption(
      new Option(
        '--date <YYYY-MM-DD>',
        'trading date recorded, in the header (default: the current or next session)',
      ).env(env('RECORD_DATE')),
    )
    .addOption(
      new Option(
        '--prev-close-file <path>',
        'previous closes for the header from a file (grouped daily bars, or {"SYM": close})',
      ).env('OPENBELL_PREV_CLOSE_FILE'),
    )
    .addOption(
      new Option('--massive-rest-url <url>', 'Massive REST API for previous closes')
        .env('MASSIVE_REST_URL')
        .default('https://api.massive.com'),
    )
    .addOption(
      new Option('--no-prev-close', 'record no previous closes in the header').env(
        env('RECORD_NO_PREV_CLOSE'),
      ),
    );
  for (const option of connectionOptions()) command.addOption(option);
  command.addHelpText(
    'after',
    `
Previous closes: the header keeps those of the recorded date (--date), for replays to load
(openbell replay): from --prev-close-file; else from the Redis at --redis-url (REDIS_URL,
--namespace) when an mdp loaded them there; else from Massive's REST grouped daily bars with
MASSIVE_API_KEY (--massive-rest-url); else none (a warning). --no-prev-close records the date alone.`,
  );
  command.action(async (flags: RecordFlags) => {
    if (flags.output === undefined) throw new Error('record: -o/--output <file> is required');
    if ((flags.from === undefined) === (flags.tap !== true))
      throw new Error('record: give either --from <ws url> or --tap');
    const log = createRootLogger('openbell-record');
    const connection = parseConnectionFlags(flags);
    const names = createNames({ namespace: connection.namespace });
    const date = flags.date ?? sessionDateAt(Date.now());
    assertDate(date);
    const meta = flags.prevClose
      ? await referenceForRecording({
          date,
          file: flags.prevCloseFile,
          redisUrl: connection.redisUrl,
          names,
          apiKey: flags.apiKey,
          restUrl: flags.massiveRestUrl,
          log,
        })
      : { date };
    const abort = new AbortController();
    const stop = (): void => abort.abort();
    process.once('SIGINT', stop).once('SIGTERM', stop);
    const common = {
      output: flags.output,
      meta,
      log,
      overwrite: flags.force === true,
      signal: abort.signal,
      ...(flags.duration === undefined ? {} : { durationMs: flags.duration * 1000 }),
    };
    const result =
      flags.from !== undefined
        ? await recordFromWebSocket({
            ...common,
            url: flags.from,
            apiKey: requireKey(flags.apiKey),
            topics: flags.topics.split(',').map((t) => t.trim()),
          })
        : await recordFromExchange({
            ...common,
            amqpUrl: connection.amqpUrl,
            names,
            bindings: flags.bindings.split(',').map((t) => t.trim()),
          });
    log.info(
      { ...result, source: flags.from === undefined ? 'tap' : redactUrl(flags.from) },
      'recorded',
    );
  });
  command.addCommand(
    new Command('import')
      .description(
        'Turn a JSONL capture ({"t":ms,"msgs":[…]} per line) into a recording, losslessly.',
      )
      .argument('<capture>', 'JSONL capture')
      .requiredOption('-o, --output <file>', 'recording to write')
      .option('--skip-bad', 'skip and count malformed lines instead of failing')
      .option('--force', 'overwrite an existing file')
      .action(
        async (input: string, flags: { output: string; skipBad?: boolean; force?: boolean }) => {
          const result = await importJsonl(input, flags.output, {
            skipBad: flags.skipBad === true,
            overwrite: flags.force === true,
          });
          process.stdout.write(`${JSON.stringify(result)}\n`);
        },
      ),
  );
  command.addCommand(
    new Command('export')
      .description('Write a recording as a JSONL capture (stdout unless -o), losslessly.')
      .argument('<file>', 'recording')
      .option('-o, --output <file>', 'JSONL file to write')
      .action(async (file: string, flags: { output?: string }) => {
        const out =
          flags.output === undefined
            ? process.stdout
            : createWriteStream(flags.output, { flags: 'wx' });
        const result = await exportJsonl(file, out);
        if (out !== process.stdout) {
          out.end();
          await finished(out);
        }
        process.stderr.write(`${JSON.stringify(result)}\n`);
      }),
  );
  command.addCommand(
    new Command('info')
      .description(
        'Describe a recording: duration, frames, events by type, symbols, peak events/s, size.',
      )
      .argument('<file>', 'recording')
      .option('--json', 'print JSON')
      .action(async (file: string, flags: { json?: boolean }) => {
        const info = await recordingInfo(file);
        process.stdout.write(
          flags.json === true ? `${JSON.stringify(info, null, 2)}\n` : `${formatInfo(info)}\n`,
        );
      }),
  );
  return command;
}

function requireKey(key: string | undefined): string {
  if (key === undefined || key === '')
    throw new Error('record: --api-key or MASSIVE_API_KEY is required with --from');
  return key;
}

/** `openbell replay`: serves a recording as a Massive-compatible WebSocket, or publishes it to the exchange. */
export function replayCommand(): Command {
  const t = parseTransportOptions({});
  const command = new Command('replay')
    .description(
      'Replay a recording: serve it as a Massive-compatible WebSocket (auth, subscribe, slow-consumer cut) or publish it to the events exchange (--to-broker).',
    )
    .argument('<file>', 'recording')
    .addOption(
      new Option('--speed <k|max>', 'real time × k, or max: as fast as the clients take it').env(
        env('REPLAY_SPEED'),
      ),
    )
    .addOption(
      new Option('--rate <events/s>', 'a fixed event rate instead of the recorded timing').env(
        env('REPLAY_RATE'),
      ),
    )
    .addOption(
      new Option('--from <HH:MM:SS>', 'start at this New York time of the trading day').env(
        env('REPLAY_FROM'),
      ),
    )
    .addOption(new Option('--to <HH:MM:SS>', 'stop at this New York time').env(env('REPLAY_TO')))
    .addOption(new Option('--loop', 'start over at the end until stopped').env(env('REPLAY_LOOP')))
    .addOption(
      new Option(
        '--to-broker',
        'publish to the events exchange instead of serving a WebSocket',
      ).env(env('REPLAY_TO_BROKER')),
    )
    .addOption(
      new Option('--host <host>', 'WebSocket bind address')
        .env(env('REPLAY_HOST'))
        .default('127.0.0.1'),
    )
    .addOption(
      new Option('--port <port>', 'WebSocket port')
        .env(env('REPLAY_PORT'))
        .argParser(integer)
        .default(8765),
    )
    .addOption(
      new Option('--api-key <key>', 'the key clients must authenticate with (never logged)')
        .env(env('REPLAY_API_KEY'))
        .default('openbell-replay'),
    )
    .addOption(
      new Option('--wait-clients <n>', 'subscribed clients to wait for before starting the clock')
        .env(env('REPLAY_WAIT_CLIENTS'))
        .argParser(integer)
        .default(1),
    )
    .addOption(
      new Option(
        '--slow-consumer-bytes <n>',
        'unsent bytes past which a client is cut as a slow consumer',
      )
        .env(env('REPLAY_SLOW_CONSUMER_BYTES'))
        .argParser(integer)
        .default(64 * 1024 * 1024),
    )
    .addOption(
      new Option('--group <name>', 'analyzers group whose queue --to-broker declares')
        .env('OPENBELL_GROUP')
        .default('analyzers'),
    )
    .addOption(
      new Option('--batch-max-events <n>', 'events per published batch (--to-broker)')
        .env('OPENBELL_BATCH_MAX_EVENTS')
        .argParser(integer)
        .default(t.batchMaxEvents),
    )
    .addOption(deliveryOption())
    .addOption(
      new Option(
        '--encode-workers <n>',
        'worker threads decoding and encoding frames for --to-broker (0: the main thread)',
      )
        .env('REPLAY_ENCODE_WORKERS')
        .argParser(integer)
        .default(DEFAULT_ENCODE_WORKERS),
    );
  command.addOption(
    new Option(
      '--no-prev-close',
      "do not load the recording's previous closes into Redis (then no Redis is needed)",
    ).env(env('REPLAY_NO_PREV_CLOSE')),
  );
  for (const option of connectionOptions()) command.addOption(option);
  for (const option of telemetryOptions(true)) command.addOption(option);
  command.addHelpText(
    'after',
    `
Previous closes: the recording's (its header's meta.prevClose, for meta.date) are stored in the
Redis at --redis-url (REDIS_URL), namespace --namespace, before the replay starts, for the
analyzers' gappers board; and again whenever that Redis loses its state while the replay runs.
A recording without them is replayed as it is (logged). --no-prev-close skips this.`,
  );
  command.addOption(
    new Option(
      '--metrics-linger-ms <ms>',
      'with --metrics-port: keep /metrics up this long after the replay ends (two scrapes)',
    )
      .env(env('REPLAY_METRICS_LINGER_MS'))
      .argParser(integer)
      .default(10_000),
  );
  command.action(async (file: string, flags: ReplayFlags) => {
    const log = createRootLogger('openbell-replay');
    const telemetry = await startProcessTelemetry('replay', flags, log, process.env);
    const recording = await openRecording(file);
    const abort = new AbortController();
    const stop = (): void => abort.abort();
    process.once('SIGINT', stop).once('SIGTERM', stop);
    try {
      const summary = await serveReplay({
        recording,
        log,
        signal: abort.signal,
        speed: flags.speed,
        rate: flags.rate,
        from: flags.from,
        to: flags.to,
        loop: flags.loop === true,
        progress: process.stderr,
        ...(flags.prevClose
          ? {
              reference: {
                redisUrl: parseConnectionFlags(flags).redisUrl,
                names: createNames({ namespace: flags.namespace }),
              },
            }
          : {}),
        ...(flags.toBroker === true
          ? {
              broker: {
                amqpUrl: parseConnectionFlags(flags).amqpUrl,
                names: createNames({ namespace: flags.namespace }),
                group: flags.group,
                transport: parseTransportOptions({
                  batchMaxEvents: flags.batchMaxEvents,
                  delivery: flags.delivery,
                }),
                workers: flags.encodeWorkers,
              },
            }
          : {
              server: {
                host: flags.host,
                port: flags.port,
                apiKey: flags.apiKey,
                waitClients: flags.waitClients,
                slowConsumerBytes: flags.slowConsumerBytes,
              },
            }),
      });
      process.stdout.write(`${JSON.stringify(summary)}\n`);
      // The final counts must reach Prometheus before the metrics port goes away.
      if (telemetry.metricsServer !== undefined)
        await sleep(flags.metricsLingerMs, undefined, { signal: abort.signal }).catch(() => {
          // Stopped by a signal: the linger ends with it.
        });
    } finally {
      await recording.close();
      await telemetry.close();
    }
  });
  return command;
}

interface ReplayFlags extends ConnectionFlags, Partial<TelemetryFlags> {
  speed?: string;
  rate?: string;
  from?: string;
  to?: string;
  loop?: boolean;
  toBroker?: boolean;
  host: string;
  port: number;
  apiKey: string;
  waitClients: number;
  slowConsumerBytes: number;
  group: string;
  batchMaxEvents: number;
  delivery: 'persistent' | 'transient';
  encodeWorkers: number;
  metricsLingerMs: number;
  prevClose: boolean;
}
