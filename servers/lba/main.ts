import { Command, Option } from 'commander';
import type { Server } from 'node:http';
import { Redis } from 'ioredis';
import {
  createAnalyzer,
  createApplyCheck,
  createHealthMonitor,
  createNames,
  createRedisHealth,
  createStateGuard,
  observeHealth,
  observeStateGuard,
  openbellMeter,
  parseTransportOptions,
  restoreLatestDate,
  type Analyzer,
} from '../../core/index.ts';
import {
  analyzerOptions,
  connectionOptions,
  parseBoardFlags,
  integer,
  stateDegradedOption,
  parseConnectionFlags,
  type AnalyzerFlags,
  type ConnectionFlags,
} from '../../cli/options.ts';
import { closeServer, createHttpApp, listen } from '../../cli/http.ts';
import { createRootLogger, runService } from '../../cli/run-service.ts';
import {
  startProcessTelemetry,
  telemetryOptions,
  type TelemetryFlags,
} from '../../cli/telemetry.ts';

type LbaFlags = ConnectionFlags &
  AnalyzerFlags &
  Partial<TelemetryFlags> & {
    httpHost: string;
    httpPort?: number;
    injectDelayMs: number;
    applyStallMs: number;
    stateDegradedMs: number;
  };

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
        '--apply-stall-ms <ms>',
        'not ready (/readyz 503) while batches are held and no apply has succeeded for this long',
      )
        .env('OPENBELL_APPLY_STALL_MS')
        .argParser(integer)
        .default(10_000),
    )
    .addOption(stateDegradedOption())
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
    const names = createNames({ namespace: connection.namespace });
    const redis = new Redis(connection.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2 });
    redis.on('error', (error: Error) => log.debug({ err: error.message }, 'redis'));
    const analyzer: Analyzer = createAnalyzer({
      amqpUrl: connection.amqpUrl,
      redis,
      names,
      log,
      group: flags.group,
      topology: { queueTtlMs: transport.queueTtlMs, queueMaxLength: transport.queueMaxLength },
      board,
      prefetch: transport.prefetch,
      injectDelayMs: flags.injectDelayMs,
    });
    // Ready while RabbitMQ and Redis are reachable, applies succeed and Redis kept its state
    // (docs: README, Health). An analyzer restores the newest date it applied after a loss.
    const redisHealth = createRedisHealth({ redis });
    const guard = createStateGuard({
      redis,
      names,
      log: log.child({ component: 'state' }),
      degradedMs: flags.stateDegradedMs,
    });
    guard.onLoss(
      'latest-date',
      restoreLatestDate(redis, names, () => analyzer.latestDate),
    );
    const monitor = createHealthMonitor({
      checks: {
        rabbitmq: () =>
          analyzer.consumer.stats.connected
            ? { ok: true, state: 'connected' }
            : { ok: false, state: 'disconnected', detail: 'consumer not connected' },
        redis: redisHealth.check,
        state: guard.check,
        applies: createApplyCheck({
          staleMs: flags.applyStallMs,
          read: () => ({
            applied: analyzer.stats.batches,
            failed: analyzer.stats.applyErrors,
            held: analyzer.consumer.stats.inFlight,
          }),
        }),
      },
      log: log.child({ component: 'health' }),
    });
    let server: Server | undefined;
    let closing = false;
    let unobserve: (() => void) | undefined;
    let unobserveGuard: (() => void) | undefined;
    const ready = (): boolean => !closing && monitor.ok();
    const startedAtMs = Date.now();
    await runService(
      telemetry.around(
        {
          start: async () => {
            unobserve = observeHealth(openbellMeter(), { monitor, ready });
            unobserveGuard = observeStateGuard(openbellMeter(), guard);
            monitor.start();
            redisHealth.start();
            if (flags.httpPort !== undefined) {
              const app = createHttpApp({
                ready,
                reason: () => (closing ? 'shutting down' : monitor.reason()),
                health: () => ({
                  status: closing ? 'stopping' : ready() ? 'ok' : 'degraded',
                  dependencies: monitor.dependencies(),
                  service: 'lba',
                  pid: process.pid,
                  uptimeSeconds: Math.round((Date.now() - startedAtMs) / 1000),
                  memory: process.memoryUsage(),
                  analyzer: analyzer.health(),
                  state: guard.stats,
                }),
                metrics: telemetry.telemetry.metricsHandler,
              });
              server = await listen(app, flags.httpHost, flags.httpPort);
              log.info({ address: server.address() }, 'http listening');
            }
            await redis.connect();
            // The state this process starts from, before its first apply.
            await guard.checkNow();
            guard.start();
            await analyzer.start();
            log.info({ group: flags.group, namespace: connection.namespace }, 'analyzing');
          },
          close: async () => {
            closing = true;
            try {
              await analyzer.close();
            } finally {
              unobserve?.();
              unobserveGuard?.();
              monitor.close();
              guard.close();
              redisHealth.close();
              redis.disconnect();
              await closeServer(server);
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
