import { diag, DiagLogLevel } from '@opentelemetry/api';
import { Option } from 'commander';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import {
  parseTelemetryEnv,
  pruneDeadTargets,
  redactUrl,
  registerScrapeTarget,
  startTelemetry,
  type Telemetry,
} from '../core/index.ts';
import { integer } from './options.ts';
import type { RunnableService } from './run-service.ts';

/** Flags of {@link telemetryOptions}. */
export interface TelemetryFlags {
  metricsHost: string;
  metricsPort?: number;
  prometheusTargets?: string;
  instance?: string;
}

/**
 * `--metrics-host/--metrics-port` (a metrics-only port: lba, replay, exporter), and
 * `--prometheus-targets <dir>`: register the process as a file_sd target there while it runs.
 */
export function telemetryOptions(withPort: boolean): Option[] {
  const port = [
    new Option('--metrics-host <host>', 'bind address of /metrics')
      .env('OPENBELL_METRICS_HOST')
      .default('127.0.0.1'),
    new Option('--metrics-port <port>', 'serve /metrics on this port (0: any free port)')
      .env('OPENBELL_METRICS_PORT')
      .argParser(integer),
  ];
  return [
    ...(withPort ? port : []),
    new Option(
      '--prometheus-targets <dir>',
      "register this process as a Prometheus file_sd target in <dir> (the services' Prometheus reads .services/prometheus/targets)",
    ).env('OPENBELL_PROMETHEUS_TARGETS'),
    new Option('--instance <name>', 'the instance label of its metrics (default: host:pid)').env(
      'OTEL_SERVICE_INSTANCE_ID',
    ),
  ];
}

/** A process's telemetry as its main runs it: start, expose, register, and stop. */
export interface ProcessTelemetry {
  readonly telemetry: Telemetry;
  /**
   * Registers the process's `/metrics` server (when `--prometheus-targets` is set); a no-op once
   * one is registered (the metrics-only port, when `--metrics-port` is given).
   */
  register(server: Pick<Server, 'address'> | undefined): Promise<void>;
  /**
   * `service` with this telemetry around it: once it started, its HTTP server (`httpServer()`,
   * which serves `/metrics`) is registered; once it closed, even with an error, telemetry stops.
   */
  around(
    service: RunnableService,
    httpServer: () => Pick<Server, 'address'> | undefined,
  ): RunnableService;
  /** Unregisters, flushes spans and stops the SDK. */
  close(): Promise<void>;
}

/**
 * Starts the OpenTelemetry SDK for `service` (`mdp`, `lba`, …), honouring the standard `OTEL_*`
 * variables, and serves a metrics-only port when `--metrics-port` is given.
 */
export async function startProcessTelemetry(
  service: string,
  flags: Partial<TelemetryFlags>,
  log: Logger,
  /** The process's environment (`OTEL_*`), passed in by its main. */
  env: Readonly<Record<string, string | undefined>>,
): Promise<ProcessTelemetry & { metricsServer?: Server }> {
  const instance = flags.instance ?? `${hostname()}:${process.pid}`;
  const options = parseTelemetryEnv(`openbell-${service}`, env);
  const telemetry = startTelemetry({ ...options, instanceId: instance });
  if (options.otlpEndpoint !== undefined) {
    // Export failures would otherwise pass in silence: the SDK reports them through diag.
    diag.setLogger(
      {
        error: (message) => log.warn({ component: 'otel' }, message),
        warn: (message) => log.warn({ component: 'otel' }, message),
        info: () => undefined,
        debug: () => undefined,
        verbose: () => undefined,
      },
      DiagLogLevel.WARN,
    );
    log.info(
      { endpoint: redactUrl(options.otlpEndpoint), sampleRatio: options.traceSampleRatio },
      'exporting traces over OTLP',
    );
  }
  let unregister: (() => Promise<void>) | undefined;
  const register = async (server: Pick<Server, 'address'> | undefined): Promise<void> => {
    if (flags.prometheusTargets === undefined || server === undefined) return;
    if (unregister !== undefined) return;
    const { address, port } = server.address() as AddressInfo;
    const bound = address === '0.0.0.0' || address === '::' ? '127.0.0.1' : address;
    const host = bound.includes(':') ? `[${bound}]` : bound;
    const pruned = await pruneDeadTargets(flags.prometheusTargets);
    if (pruned.length > 0)
      log.info({ pruned }, 'removed the targets of processes no longer running');
    unregister = await registerScrapeTarget(flags.prometheusTargets, `${service}-${process.pid}`, {
      address: `${host}:${port}`,
      labels: { service, instance },
    });
  };
  let metricsServer: Server | undefined;
  if (flags.metricsPort !== undefined) {
    metricsServer = await telemetry.serveMetrics(
      flags.metricsHost ?? '127.0.0.1',
      flags.metricsPort,
    );
    log.info({ address: metricsServer.address() }, 'metrics listening');
    await register(metricsServer);
  }
  const close = async (): Promise<void> => {
    await unregister?.().catch(() => undefined);
    metricsServer?.close();
    await telemetry.shutdown();
  };
  return {
    telemetry,
    register,
    ...(metricsServer === undefined ? {} : { metricsServer }),
    around: (service, httpServer) => ({
      start: async () => {
        await service.start();
        await register(httpServer());
      },
      close: async () => {
        try {
          await service.close();
        } finally {
          await close();
        }
      },
    }),
    close,
  };
}
