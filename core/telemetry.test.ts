import { context, propagation, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import {
  InMemorySpanExporter,
  ParentBasedSampler,
  SimpleSpanProcessor,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pruneDeadTargets, registerScrapeTarget } from './scrape-target.ts';
import { parseTelemetryEnv } from './telemetry.ts';
import { contextFromHeaders, createLinkRing, traceHeaders } from './tracing.ts';

describe('parseTelemetryEnv', () => {
  it('exports traces only with an endpoint, to the traces path of the general one', () => {
    expect(parseTelemetryEnv('openbell-mdp', {}).otlpEndpoint).toBeUndefined();
    const general = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/' };
    expect(parseTelemetryEnv('s', general).otlpEndpoint).toBe('http://collector:4318/v1/traces');
    const specific = { ...general, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://t:1/x' };
    expect(parseTelemetryEnv('s', specific).otlpEndpoint).toBe('http://t:1/x');
    expect(
      parseTelemetryEnv('s', { ...general, OTEL_SDK_DISABLED: 'TRUE' }).otlpEndpoint,
    ).toBeUndefined();
  });

  it('reads the sampler and its ratio, naming a bad one', () => {
    expect(parseTelemetryEnv('s', {}).traceSampleRatio).toBe(1);
    expect(parseTelemetryEnv('s', { OTEL_TRACES_SAMPLER_ARG: '0.25' }).traceSampleRatio).toBe(0.25);
    expect(parseTelemetryEnv('s', { OTEL_TRACES_SAMPLER: 'always_off' }).traceSampleRatio).toBe(0);
    expect(() => parseTelemetryEnv('s', { OTEL_TRACES_SAMPLER_ARG: '2' })).toThrow(
      /OTEL_TRACES_SAMPLER_ARG: expected a ratio in \[0, 1\], got 2/,
    );
    expect(() => parseTelemetryEnv('s', { OTEL_TRACES_SAMPLER: 'jaeger_remote' })).toThrow(
      /OTEL_TRACES_SAMPLER: expected one of/,
    );
  });
});

describe('trace context across a message', () => {
  const exporter = new InMemorySpanExporter();
  let provider: TracerProvider;
  beforeAll(() => {
    provider = new TracerProvider({
      sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(0.5) }),
      spanProcessors: [new SimpleSpanProcessor({ exporter })],
    });
    trace.setGlobalTracerProvider(provider);
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  });
  afterAll(async () => {
    await provider.shutdown();
    trace.disable();
    propagation.disable();
  });

  it('keeps a batch whole at a ratio below 1: the consumer follows the producer', () => {
    const tracer = trace.getTracer('test');
    let sampled = 0;
    for (let n = 0; n < 400; n++) {
      const producer = tracer.startSpan('publish');
      const headers = traceHeaders(producer.spanContext());
      // Sampled out or not, the context travels (flags 00 or 01).
      expect(headers['traceparent']).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
      const consumer = tracer.startSpan('apply', {}, contextFromHeaders(headers));
      expect(consumer.isRecording()).toBe(producer.isRecording());
      expect(consumer.spanContext().traceId).toBe(producer.spanContext().traceId);
      if (producer.isRecording()) sampled++;
      consumer.end();
      producer.end();
    }
    // A ratio of 0.5 over 400 traces: both outcomes happen.
    expect(sampled).toBeGreaterThan(100);
    expect(sampled).toBeLessThan(300);
    expect(exporter.getFinishedSpans()).toHaveLength(sampled * 2);
  });

  it('reads no context from a message without one', () => {
    expect(trace.getSpanContext(contextFromHeaders({}))).toBeUndefined();
    expect(trace.getSpanContext(contextFromHeaders({ traceparent: 42 }))).toBeUndefined();
    expect(trace.getSpanContext(contextFromHeaders(undefined))).toBeUndefined();
    expect(context.active()).toBe(contextFromHeaders({ traceparent: 'garbage' }));
  });

  it('links only sampled spans, the newest kept, and hands each once', () => {
    const ring = createLinkRing(3);
    const tracer = trace.getTracer('test');
    const spans = Array.from({ length: 40 }, () => tracer.startSpan('s'));
    for (const span of spans) ring.add(span.spanContext());
    const sampled = spans.filter((s) => s.isRecording()).map((s) => s.spanContext().spanId);
    expect(ring.take().map((l) => l.context.spanId)).toEqual(sampled.slice(-3));
    expect(ring.take()).toEqual([]);
    for (const span of spans) span.end();
  });
});

describe('registerScrapeTarget', () => {
  it('writes a file_sd file Prometheus reads, and removes it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'openbell-sd-'));
    try {
      const remove = await registerScrapeTarget(join(dir, 'targets'), 'lba-1', {
        address: '127.0.0.1:9464',
        labels: { service: 'lba', instance: 'lba-1', run: 'r1' },
      });
      const file = join(dir, 'targets', 'lba-1.json');
      expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual([
        {
          targets: ['127.0.0.1:9464'],
          labels: { service: 'lba', instance: 'lba-1', run: 'r1' },
        },
      ]);
      await remove();
      expect(readdirSync(join(dir, 'targets'))).toEqual([]);
      // A process killed before it unregistered leaves its file; a live one keeps its own.
      const target = { address: '127.0.0.1:1', labels: {} };
      const dead = spawnSync(process.execPath, ['-e', 'process.pid']).pid;
      await registerScrapeTarget(join(dir, 'targets'), `lba-${dead}`, target);
      await registerScrapeTarget(join(dir, 'targets'), `mdp-${process.pid}`, target);
      await registerScrapeTarget(join(dir, 'targets'), 'lab-run-lba-1', target);
      expect(await pruneDeadTargets(join(dir, 'targets'))).toEqual([`lba-${dead}.json`]);
      expect(readdirSync(join(dir, 'targets')).sort()).toEqual([
        'lab-run-lba-1.json',
        `mdp-${process.pid}.json`,
      ]);
      await expect(
        registerScrapeTarget(dir, '../escape', { address: 'x:1', labels: {} }),
      ).rejects.toThrow(/scrape target name/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
