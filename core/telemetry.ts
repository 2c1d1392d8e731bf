import { metrics, propagation, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import {
  BatchSpanProcessor,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { hostname } from 'node:os';
import { ConfigError } from './errors.ts';
import { openbellMeter } from './instruments.ts';
import { observeProcess } from './process-metrics.ts';

/** Options of {@link startTelemetry}, as {@link parseTelemetryEnv} reads them. */
export interface TelemetryOptions {
  /** `service.name`, e.g. `openbell-mdp`. */
  service: string;
  /** `service.instance.id`. @default `<host>:<pid>` */
  instanceId?: string | undefined;
  /** OTLP/HTTP traces URL (e.g. `http://collector:4318/v1/traces`); traces are exported only when set. */
  otlpEndpoint?: string | undefined;
  /** Share of new traces sampled (parent-based: a sampled parent is always followed). @default 1 */
  traceSampleRatio?: number;
}

/** The samplers of `OTEL_TRACES_SAMPLER` openbell honours, as the ratio of new traces kept. */
const SAMPLER_RATIOS: Record<string, number | 'arg'> = {
  always_on: 1,
  always_off: 0,
  traceidratio: 'arg',
  parentbased_always_on: 1,
  parentbased_always_off: 0,
  parentbased_traceidratio: 'arg',
};

/**
 * Reads the standard OpenTelemetry variables openbell honours: `OTEL_SDK_DISABLED`, the OTLP
 * traces endpoint (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as given, or `OTEL_EXPORTER_OTLP_ENDPOINT`
 * plus `/v1/traces`), `OTEL_TRACES_SAMPLER` with `OTEL_TRACES_SAMPLER_ARG` (always parent-based:
 * a batch's spans follow its listener span), `OTEL_SERVICE_INSTANCE_ID`.
 */
export function parseTelemetryEnv(
  service: string,
  env: Readonly<Record<string, string | undefined>>,
): TelemetryOptions {
  const sampler = (env['OTEL_TRACES_SAMPLER'] || 'parentbased_traceidratio').toLowerCase();
  const kind = SAMPLER_RATIOS[sampler];
  if (kind === undefined) {
    const known = Object.keys(SAMPLER_RATIOS).join(', ');
    throw new ConfigError('OTEL_TRACES_SAMPLER', `expected one of ${known}, got ${sampler}`);
  }
  const ratioText = env['OTEL_TRACES_SAMPLER_ARG'];
  const ratio =
    kind !== 'arg' ? kind : ratioText === undefined || ratioText === '' ? 1 : Number(ratioText);
  if (!Number.isFinite(ratio) || ratio < 0 || ratio > 1) {
    throw new ConfigError(
      'OTEL_TRACES_SAMPLER_ARG',
      `expected a ratio in [0, 1], got ${ratioText}`,
    );
  }
  const traces = env['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] || undefined;
  const base = env['OTEL_EXPORTER_OTLP_ENDPOINT'] || undefined;
  const disabled = (env['OTEL_SDK_DISABLED'] ?? '').toLowerCase() === 'true';
  return {
    service,
    instanceId: env['OTEL_SERVICE_INSTANCE_ID'] || undefined,
    otlpEndpoint: disabled
      ? undefined
      : (traces ?? (base === undefined ? undefined : `${base.replace(/\/+$/, '')}/v1/traces`)),
    traceSampleRatio: ratio,
  };
}

/** A process's telemetry: the Prometheus scrape handler, optional tracing, and shutdown. */
export interface Telemetry {
  /** Answers a scrape with every metric of the process (Prometheus text format). */
  readonly metricsHandler: (request: IncomingMessage, response: ServerResponse) => void;
  /** Whether spans are exported (an OTLP endpoint is set). */
  readonly tracing: boolean;
  /** Serves `/metrics` and `/healthz` alone on `host:port` (0: any free port), unref'd. */
  serveMetrics(host: string, port: number): Promise<Server>;
  /** Exports the spans ended so far (no-op without tracing). */
  flushTraces(): Promise<void>;
  /** Flushes spans and unregisters the providers; idempotent. */
  shutdown(): Promise<void>;
}

/**
 * Starts the OpenTelemetry SDK for this process: a meter provider read by a Prometheus exporter
 * (no server of its own: callers mount {@link Telemetry.metricsHandler}), process metrics, the
 * W3C trace-context propagator, and a tracer provider exporting OTLP when an endpoint is set.
 * Registers them globally, so components use the `@opentelemetry/api` without wiring.
 */
export function startTelemetry(options: TelemetryOptions): Telemetry {
  const resource = resourceFromAttributes({
    'service.name': options.service,
    'service.namespace': 'openbell',
    'service.instance.id': options.instanceId ?? `${hostname()}:${process.pid}`,
  });
  const exporter = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true });
  const meterProvider = new MeterProvider({ resource, readers: [exporter] });
  metrics.setGlobalMeterProvider(meterProvider);
  const stopProcess = observeProcess(openbellMeter());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());

  let tracerProvider: TracerProvider | undefined;
  if (options.otlpEndpoint !== undefined) {
    const ratio = options.traceSampleRatio ?? 1;
    tracerProvider = new TracerProvider({
      resource,
      sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) }),
      spanProcessors: [
        new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: options.otlpEndpoint }) }),
      ],
    });
    trace.setGlobalTracerProvider(tracerProvider);
  }
  const metricsHandler = exporter.getMetricsRequestHandler.bind(exporter);
  let shut: Promise<void> | undefined;

  return {
    metricsHandler,
    tracing: tracerProvider !== undefined,
    serveMetrics: (host, port) => serveMetrics(metricsHandler, host, port),
    flushTraces: async () => {
      await tracerProvider?.forceFlush();
    },
    shutdown: () =>
      (shut ??= (async () => {
        stopProcess();
        await tracerProvider?.shutdown().catch(() => undefined);
        await meterProvider.shutdown().catch(() => undefined);
        metrics.disable();
        trace.disable();
        propagation.disable();
      })()),
  };
}

function serveMetrics(
  handler: Telemetry['metricsHandler'],
  host: string,
  port: number,
): Promise<Server> {
  const server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method === 'GET' && path === '/metrics') return handler(request, response);
    if (request.method === 'GET' && path === '/healthz') {
      response.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    response.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.unref();
      resolve(server);
    });
  });
}
