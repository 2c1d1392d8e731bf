import { Command, Option } from 'commander';
import type { Server } from 'node:http';
import { Redis } from 'ioredis';
import {
  createAnalyzer,
  createNames,
  parseTransportOptions,
  type Analyzer,
} from '../../core/index.ts';
import {
  analyzerOptions,
  connectionOptions,
  parseBoardFlags,
  integer,
  parseConnectionFlags,
  type AnalyzerFlags,
  type ConnectionFlags,
} from '../../cli/options.ts';
import { createHttpApp, listen } from '../../cli/http.ts';
import { createRootLogger, runService } from '../../cli/run-service.ts';
import {
  startProcessTelemetry,
  telemetryOptions,
  type TelemetryFlags,
} from '../../cli/telemetry.ts';

type LbaFlags = ConnectionFlags &
  AnalyzerFlags &
  Partial<TelemetryFlags> & { httpHost: string; httpPort?: number; injectDelayMs: number };

/** `openbell lba`: a headless analyzer; run as many as needed against the same RabbitMQ and Redis. */
export function lbaCommand(): Command {
  const command = new Command('lba').description(
    'Run a headless analyzer: consume event batches from RabbitMQ, apply them to the boards in Redis, publish board updates.',
  );
  for (const option of [...connectionOptions(), ...analyzerOptions()]) command.addOption(option);
  command
    .addOption(
      new Option('--http-host <host>', 'bind address of the health endpoints')
        .env('LBA_HTTP_HOST')
        .default('127.0.0.1'),
    )
    .addOption(
      new Option(
        '--http-port <port>',
        'serve /healthz, /readyz, /health (JSON) and /metrics on this port (0: any free port; none when absent)',
      )
        .env('LBA_HTTP_PORT')
        .argParser(integer),
    )
    .addOption(
      new Option(
        '--inject-delay-ms <ms>',
        "fault injection: hold every batch this long, one after another (the lab's poc comparison)",
      )
        .env('OPENBELL_INJECT_DELAY_MS')
        .argParser(integer)
        .default(0),
    );
  for (const option of telemetryOptions(true)) command.addOption(option);
  command.action(async (flags: LbaFlags) => {
    const log = createRootLogger('openbell-lba');
    const telemetry = await startProcessTelemetry('lba', flags, log, process.env);
    const connection = parseConnectionFlags(flags);
    const transport = parseTransportOptions({
      queueTtlMs: flags.queueTtlMs,
      queueMaxLength: flags.queueMaxLength,
      prefetch: flags.prefetch,
    });
    const board = parseBoardFlags(flags);
    const redis = new Redis(connection.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2 });
    redis.on('error', (error: Error) => log.debug({ err: error.message }, 'redis'));
    const analyzer: Analyzer = createAnalyzer({
      amqpUrl: connection.amqpUrl,
      redis,
      names: createNames({ namespace: connection.namespace }),
      log,
      group: flags.group,
      topology: { queueTtlMs: transport.queueTtlMs, queueMaxLength: transport.queueMaxLength },
      board,
      prefetch: transport.prefetch,
      injectDelayMs: flags.injectDelayMs,
    });
    let server: Server | undefined;
    let closing = false;
    const startedAtMs = Date.now();
    await runService(
      telemetry.around(
        {
          start: async () => {
            if (flags.httpPort !== undefined) {
              const app = createHttpApp({
                ready: () => !closing && analyzer.consumer.stats.connected,
                health: () => ({
                  status: closing ? 'stopping' : 'ok',
                  service: 'lba',
                  pid: process.pid,
                  uptimeSeconds: Math.round((Date.now() - startedAtMs) / 1000),
                  memory: process.memoryUsage(),
                  analyzer: analyzer.health(),
                }),
                metrics: telemetry.telemetry.metricsHandler,
              });
              server = await listen(app, flags.httpHost, flags.httpPort);
              log.info({ address: server.address() }, 'http listening');
            }
            await redis.connect();
            await analyzer.start();
            log.info({ group: flags.group, namespace: connection.namespace }, 'analyzing');
          },
          close: async () => {
            closing = true;
            try {
              await analyzer.close();
            } finally {
              redis.disconnect();
              server?.close();
            }
          },
        },
        () => server,
      ),
      log,
    );
  });
  return command;
}
