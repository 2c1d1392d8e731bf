import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import amqp from 'amqplib';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import {
  DEFAULTS,
  createBatchConsumer,
  createBatchPublisher,
  createBoardStore,
  createNames,
  decodeFrame,
  encodeBatch,
  tradingDateOf,
  type EventBatch,
  type MarketEvent,
} from '../core/index.ts';
import type { ServiceUrls } from '../services/ensure.ts';
import { startPrivateRedis } from '../services/private.ts';
import { createMassiveServer } from '../replay/massive-server.ts';
import { deleteKeys, management } from '../testing/services-admin.ts';
import { cpuSeconds, findProcess, type Measurement } from './measure.ts';
import { SAMPLE_START_MS, sampleWireEvents, toFrames } from './sample.ts';

const BIN = fileURLToPath(new URL('../bin/openbell.mjs', import.meta.url));
const log = pino({ level: 'silent' });
const DAY_MS = 86_400_000;
const PASS_THROUGH_WARM_UPS = 3;

/** Wire frames for one end-to-end pass, with what it takes to know they are all applied. */
interface Workload {
  /** As the server sends them: encoded once, ahead of the run, as a real feed's would be. */
  frames: Buffer[];
  /** Events sent. */
  events: number;
  /** Aggregates and trades among them: what the boards apply. */
  applicable: number;
  /** The trading date they fall on. */
  date: string;
}

/** The bench's sample as wire frames from `startMs`, and the events they decode to. */
function sample(
  events: number,
  startMs = SAMPLE_START_MS,
): { load: Workload; decoded: MarketEvent[] } {
  const frames = toFrames(sampleWireEvents(events, 5, startMs), 6);
  const decoded = frames.flatMap((f) => decodeFrame(f).events);
  const applicable = decoded.filter((e) => e.ev === 'T' || e.ev === 'A').length;
  return {
    load: {
      frames: frames.map((f) => Buffer.from(f)),
      events,
      applicable,
      date: tradingDateOf(startMs),
    },
    decoded,
  };
}

/** The bench's sample as wire frames, from `startMs`. */
function workload(events: number, startMs = SAMPLE_START_MS): Workload {
  return sample(events, startMs).load;
}

/**
 * The warm-up of each end-to-end run: a third of the measured events, a day earlier (so it
 * writes other keys), sent through the same processes first and not counted. The pass-through
 * is measured warm too; long-running processes are what the figure is about.
 */
function warmUpOf(measured: Workload): Workload {
  return workload(Math.ceil(measured.events / 3), SAMPLE_START_MS - DAY_MS);
}

/** Options of {@link benchPipeline}. */
export interface PipelineBenchOptions {
  urls: Required<Pick<ServiceUrls, 'redisUrl' | 'amqpUrl' | 'rabbitmqManagementUrl'>>;
  /** Events sent through the pipeline. @default 600000 */
  events?: number;
  /** Events per batch, as the listener publishes them. @default 500 */
  batchEvents?: number;
  /**
   * End-to-end runs, each after a pass-through run; the figures are the best runs', the medians
   * beside them, and each end-to-end run's ratio to its own pass-through run. @default 3
   */
  runs?: number;
}

interface Sandbox {
  namespace: string;
  amqpUrl: string;
  redisUrl: string;
  cleanup(): Promise<void>;
}

/** A private vhost and key namespace for one measurement, deleted afterwards. */
async function sandbox(urls: PipelineBenchOptions['urls']): Promise<Sandbox> {
  const namespace = `bench-${randomBytes(4).toString('hex')}`;
  await management(urls.rabbitmqManagementUrl, 'PUT', `/api/vhosts/${namespace}`, {});
  const amqp = new URL(urls.amqpUrl);
  const user = decodeURIComponent(amqp.username || 'guest');
  await management(
    urls.rabbitmqManagementUrl,
    'PUT',
    `/api/permissions/${namespace}/${encodeURIComponent(user)}`,
    { configure: '.*', write: '.*', read: '.*' },
  );
  amqp.pathname = `/${namespace}`;
  return {
    namespace,
    amqpUrl: amqp.toString(),
    redisUrl: urls.redisUrl,
    async cleanup() {
      const redis = new Redis(urls.redisUrl);
      await deleteKeys(redis, `${namespace}:*`);
      redis.disconnect();
      await management(urls.rabbitmqManagementUrl, 'DELETE', `/api/vhosts/${namespace}`);
    },
  };
}

/**
 * The pipeline at full speed, next to the raw limits measured in the same run:
 * - `broker.pass-through`: pre-encoded batches published (confirms) to a no-op consumer (acks),
 *   measured right before each end-to-end run, transient and (`.persistent`) persistent;
 * - `redis.apply`: the same batches applied to the boards straight from this process;
 * - `pipeline.end-to-end`: wire JSON frames from a Massive-protocol server → `openbell mdp`
 *   (listener, no analyzer) → RabbitMQ → one `openbell lba` → Redis, until every aggregate and
 *   trade is applied, after an uncounted warm-up through the same processes. Quotes travel to
 *   the exchange but no analyzer consumes them. Each run with durable batches (the default) is
 *   followed by one with `--delivery transient` (`pipeline.end-to-end.transient`): the cost of
 *   surviving a broker restart, measured side by side.
 */
export async function benchPipeline(options: PipelineBenchOptions): Promise<Measurement[]> {
  const count = options.events ?? 600_000;
  const batchEvents = options.batchEvents ?? 500;
  // The frames are decoded once: to count what the boards apply, and for the batches below.
  const { load: measured, decoded: events } = sample(count);
  const warmUp = warmUpOf(measured);
  const { applicable } = measured;
  const batches: EventBatch[] = [];
  for (let i = 0; i < events.length; i += batchEvents) {
    batches.push({
      v: 1,
      id: `bench-${i}`,
      receivedAtMs: Date.now(),
      events: events.slice(i, i + batchEvents),
    });
  }
  const script = await redisApply(options.urls, batches, applicable, 32);
  const halfGroups = await redisApply(options.urls, batches, applicable, 16);
  const persistence = await redisPersistence(options.urls, batches, applicable);
  // Pass-through and end to end alternate, so each end-to-end run has a pass-through run measured
  // next to it on the machine as it was then (its speed drifts by up to half over minutes).
  // Pass-through runs first, not counted: in a fresh process the first runs ramp up (0.8-0.95,
  // 1.1-1.5, 1.0-1.6, then 1.3-1.6 M events/s in five processes of four runs), this process's
  // publishing code still warming up. Each end-to-end run has its own warm-up (see warmUpOf).
  for (let n = 0; n < PASS_THROUGH_WARM_UPS; n++) await passThrough(options.urls, batches, count);
  const raws: Measurement[] = [];
  const persistentRaws: Measurement[] = [];
  const runs: Measurement[] = [];
  const transientRuns: Measurement[] = [];
  for (let run = 0; run < (options.runs ?? 3); run++) {
    // Its own warm-up too: right after an end-to-end run (or any pause) a pass-through run, under
    // a second long, often ran at half the speed of the next one.
    await passThrough(options.urls, batches, count);
    raws.push(await passThrough(options.urls, batches, count));
    persistentRaws.push(await passThrough(options.urls, batches, count, true));
    // Durable (the default) and transient batches, one after the other on the machine as it is.
    runs.push(await endToEnd(options.urls, measured, warmUp));
    transientRuns.push(
      await endToEnd(
        options.urls,
        measured,
        warmUp,
        { OPENBELL_DELIVERY: 'transient' },
        'pipeline.end-to-end.transient',
      ),
    );
  }
  // Rounded down, so a ratio shown as 0.200 is one that reached it.
  const ratio = (a: Measurement, b: Measurement): number =>
    Math.floor((a.perSecond / b.perSecond) * 1000) / 1000;
  const median = (values: number[]): number | undefined =>
    [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
  const ratios = runs.map((m, n) => ratio(m, raws[n]!));
  const durableRatios = runs.map((m, n) => ratio(m, transientRuns[n]!));
  return [
    summarize('broker.pass-through', raws, { note: 'transient messages' }),
    summarize('broker.pass-through.persistent', persistentRaws, {
      note: 'persistent messages on a durable queue',
    }),
    script,
    halfGroups,
    ...persistence,
    summarize('pipeline.end-to-end', runs, {
      delivery: 'persistent',
      passThroughRatios: ratios,
      medianPassThroughRatio: median(ratios),
      transientRatios: durableRatios,
      medianTransientRatio: median(durableRatios),
    }),
    summarize('pipeline.end-to-end.transient', transientRuns, { delivery: 'transient' }),
  ];
}

/**
 * Several runs of one measurement as one: the best run's figures (rate, seconds, CPU per event),
 * with the median rate and every run's rate beside them.
 */
function summarize(name: string, runs: Measurement[], extra: Record<string, unknown> = {}) {
  const byRate = [...runs].sort((a, b) => a.perSecond - b.perSecond);
  return {
    ...byRate.at(-1)!,
    name,
    runs: runs.length,
    medianPerSecond: byRate[Math.floor(byRate.length / 2)]!.perSecond,
    allPerSecond: runs.map((m) => m.perSecond),
    ...extra,
  };
}

function result(
  name: string,
  items: number,
  seconds: number,
  extra: Record<string, unknown> = {},
): Measurement {
  const perSecond = Math.round(items / seconds);
  return {
    name,
    items,
    runs: 1,
    perSecond,
    medianPerSecond: perSecond,
    nsPerItem: Math.round((seconds * 1e9) / items),
    seconds: Math.round(seconds * 1000) / 1000,
    ...extra,
  };
}

async function passThrough(
  urls: PipelineBenchOptions['urls'],
  batches: EventBatch[],
  events: number,
  persistent = false,
): Promise<Measurement> {
  const box = await sandbox(urls);
  const names = createNames({ namespace: box.namespace });
  const bodies = batches.map((b) => ({ body: encodeBatch(b), events: b.events.length }));
  let acked = 0;
  const consumer = createBatchConsumer({
    url: box.amqpUrl,
    names,
    group: 'raw',
    log,
    prefetch: 64,
    concurrency: 16,
    topology: { queueTtlMs: 600_000, queueMaxLength: 1_000_000 },
    handle: () => {
      acked++;
      return Promise.resolve();
    },
  });
  const publisher = createBatchPublisher({ url: box.amqpUrl, names, log, persistent });
  try {
    await consumer.start();
    await publisher.start();
    const start = performance.now();
    for (const { body, events: n } of bodies) {
      while (!publisher.tryPublish('T', body, { 'x-openbell-events': n }))
        await publisher.whenWritable();
    }
    while (acked < bodies.length) await new Promise((r) => setTimeout(r, 2));
    const name = persistent ? 'broker.pass-through.persistent' : 'broker.pass-through';
    return result(name, events, (performance.now() - start) / 1000, {
      batches: bodies.length,
    });
  } finally {
    await publisher.close();
    await consumer.close();
    await box.cleanup();
  }
}

/** The board script alone, fed groups of `perGroup` batches from this process, two at a time. */
async function redisApply(
  urls: PipelineBenchOptions['urls'],
  batches: EventBatch[],
  applicable: number,
  perGroup: number,
): Promise<Measurement> {
  const box = await sandbox(urls);
  const redis = new Redis(box.redisUrl);
  const store = createBoardStore({
    redis,
    names: createNames({ namespace: box.namespace }),
    board: DEFAULTS.board,
  });
  try {
    const start = performance.now();
    const groups: EventBatch[][] = [];
    for (let i = 0; i < batches.length; i += perGroup) groups.push(batches.slice(i, i + perGroup));
    const worker = async (): Promise<void> => {
      for (let next = groups.shift(); next !== undefined; next = groups.shift())
        await store.applyBatches(next);
    };
    await Promise.all(Array.from({ length: 2 }, worker));
    // 32 batches, 16,000 events: the most an analyzer applies in one script call.
    const events = perGroup * (batches[0]?.events.length ?? 0);
    const name = perGroup === 32 ? 'redis.apply' : `redis.apply.groups-${events}`;
    return result(name, applicable, (performance.now() - start) / 1000, {
      note: `applied from this process in groups of ${perGroup} batches (${events} events), 2 groups in flight`,
    });
  } finally {
    redis.disconnect();
    await box.cleanup();
  }
}

/**
 * The board script on private Redis instances with each persistence setting the services could
 * run: no append-only file, `appendfsync everysec`, `appendfsync always` (one fsync per script
 * call), interleaved, three runs each; the best and median of each.
 */
async function redisPersistence(
  urls: PipelineBenchOptions['urls'],
  batches: EventBatch[],
  applicable: number,
): Promise<Measurement[]> {
  const baseDir = mkdtempSync(join(tmpdir(), 'openbell-bench-'));
  const settings = [
    { name: 'redis.apply.aof-off', appendOnly: false },
    { name: 'redis.apply.aof-everysec', appendOnly: true, appendFsync: 'everysec' as const },
    { name: 'redis.apply.aof-always', appendOnly: true, appendFsync: 'always' as const },
  ];
  const instances = await Promise.all(
    settings.map(({ appendOnly, appendFsync }) =>
      startPrivateRedis({ baseDir, appendOnly, ...(appendFsync ? { appendFsync } : {}) }),
    ),
  );
  try {
    const runs = settings.map((): Measurement[] => []);
    for (let run = 0; run < 3; run++) {
      for (const [n, instance] of instances.entries()) {
        const measured = await redisApply(
          { ...urls, redisUrl: instance.url },
          batches,
          applicable,
          32,
        );
        runs[n]!.push(measured);
      }
    }
    return settings.map(({ name }, n) =>
      summarize(name, runs[n]!, {
        note: 'redis.apply on a private Redis with this persistence (groups of 16,000 events)',
      }),
    );
  } finally {
    await Promise.all(instances.map((instance) => instance.close()));
    rmSync(baseDir, { recursive: true, force: true });
  }
}

async function endToEnd(
  urls: PipelineBenchOptions['urls'],
  measured: Workload,
  warmUp: Workload,
  extraEnv: Record<string, string> = {},
  name = 'pipeline.end-to-end',
): Promise<Measurement> {
  const box = await sandbox(urls);
  const server = await createMassiveServer({ apiKey: 'bench' });
  const env = {
    ...process.env,
    ...extraEnv,
    AMQP_URL: box.amqpUrl,
    REDIS_URL: box.redisUrl,
    OPENBELL_NAMESPACE: box.namespace,
    LOG_LEVEL: 'warn',
    OPENBELL_QUEUE_TTL_MS: '600000',
  };
  const children: ChildProcess[] = [];
  const run = (args: string[]): ChildProcess => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    children.push(child);
    return child;
  };
  const redis = new Redis(box.redisUrl);
  const names = createNames({ namespace: box.namespace });
  const store = createBoardStore({ redis, names, board: DEFAULTS.board });
  /**
   * Sends `load` and waits until the boards have applied all of it; throws, naming `what`, when
   * they have not within 300 s. Returns how many they applied.
   */
  const pass = async (load: Workload, what: string): Promise<number> => {
    for (const frame of load.frames) server.send(frame);
    const applied = await pollUntil(
      async () => {
        const done = await store.applied(load.date);
        return done.aggregates + done.trades;
      },
      (count) => count >= load.applicable,
      300_000,
      20,
    );
    if (applied < load.applicable)
      throw new Error(`pipeline bench: ${applied} of ${load.applicable} ${what} applied in 300 s`);
    return applied;
  };
  try {
    const lbaPort = await freePort();
    const lba = run(['lba', '--http-port', String(lbaPort)]);
    const mdp = run([
      'mdp',
      '--massive-ws-url',
      server.url,
      '--massive-api-key',
      'bench',
      '--no-analyzer',
      '--no-feed',
      '--no-prev-close-fetch',
      '--port',
      '0',
    ]);
    await server.waitForSubscribers(1, 30_000);
    await waitForConsumer(box.amqpUrl, names.queue('analyzers'));
    // CPU time of each part over the run: what a faster end to end has to take from.
    // RabbitMQ when the bench's broker runs on this machine (the Erlang VM booting rabbit).
    const local = ['127.0.0.1', 'localhost', '[::1]'].includes(new URL(box.amqpUrl).hostname);
    // Not a private node a test or lab started beside it (services/private.ts names them so).
    const broker = local
      ? findProcess(
          (line, pid) =>
            line.includes('beam.smp') &&
            line.includes('-s rabbit boot') &&
            !/RABBITMQ_NODENAME=openbell-[0-9a-f]{8}@/.test(environOf(pid)),
        )
      : undefined;
    const cpu = async () => {
      const self = process.cpuUsage();
      return {
        mdp: cpuSeconds(mdp.pid!),
        lba: cpuSeconds(lba.pid!),
        redis: await redisCpuSeconds(redis),
        ...(broker === undefined ? {} : { rabbitmq: cpuSeconds(broker) }),
        sender: (self.user + self.system) / 1e6,
      };
    };
    await pass(warmUp, 'warm-up events');
    const warmUpGroups = await analyzerGroups(lbaPort, warmUp.applicable);
    const cpuBefore = await cpu();
    const start = performance.now();
    const applied = await pass(measured, 'events');
    const seconds = (performance.now() - start) / 1000;
    const cpuAfter = await cpu();
    // How the analyzer grouped the batches it held: what a script call cost Redis depends on it.
    const after = await analyzerGroups(lbaPort, warmUp.applicable + measured.applicable);
    const groups = after.groups - warmUpGroups.groups;
    const before: Record<string, number> = cpuBefore;
    const cpuUsPerEvent = Object.fromEntries(
      Object.entries(cpuAfter).map(([part, cpuSecondsAfter]) => [
        part,
        Math.round(((cpuSecondsAfter - before[part]!) * 1e7) / measured.events) / 10,
      ]),
    );
    return result(name, measured.events, seconds, {
      applied,
      warmUpEvents: warmUp.events,
      cpuUsPerEvent,
      groups,
      eventsPerGroup: groups === 0 ? 0 : Math.round((after.events - warmUpGroups.events) / groups),
      frames: measured.frames.length,
      note: 'Massive-protocol WS → mdp listener → RabbitMQ → 1 lba → Redis, after a warm-up',
    });
  } finally {
    for (const child of children) {
      child.kill('SIGTERM');
      if (child.exitCode === null) await once(child, 'exit');
    }
    redis.disconnect();
    await server.close();
    await box.cleanup();
  }
}

/**
 * The lba's group counters, from its /health, once it has counted `applied` aggregates and trades
 * (Redis shows a group applied a moment before the lba counts it); as they are after 10 s.
 */
async function analyzerGroups(
  port: number,
  applied: number,
): Promise<{ groups: number; events: number }> {
  return pollUntil(
    async () => {
      const health = (await (await fetch(`http://127.0.0.1:${port}/health`)).json()) as {
        analyzer: { groups: number; events: number; aggregates: number; trades: number };
      };
      return health.analyzer;
    },
    (analyzer) => analyzer.aggregates + analyzer.trades >= applied,
    10_000,
    10,
  );
}

/** Calls `read` until `done` holds of its result or `timeoutMs` passes; returns the last result. */
async function pollUntil<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs: number,
  intervalMs: number,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value) || Date.now() >= deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** A process's environment as one string, or '' when it cannot be read. */
function environOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8').replaceAll('\0', '\n');
  } catch {
    return '';
  }
}

/** A TCP port free on loopback right now. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** CPU seconds Redis has used (main thread and the rest), from INFO. */
async function redisCpuSeconds(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const field = (name: string): number =>
    Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1]);
  return field('used_cpu_sys') + field('used_cpu_user');
}

/** Waits until `queue` has a consumer, asking the broker itself (the management API lags by seconds). */
async function waitForConsumer(amqpUrl: string, queue: string): Promise<void> {
  const connection = await amqp.connect(amqpUrl);
  connection.on('error', () => undefined); // A lost connection fails the next check instead.
  try {
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      // A failed check (the queue not declared yet) closes the channel: one channel per check.
      const channel = await connection.createChannel();
      channel.on('error', () => undefined);
      const consumers = await channel
        .checkQueue(queue)
        .then((q) => q.consumerCount)
        .catch(() => 0);
      await channel.close().catch(() => undefined);
      if (consumers > 0) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    await connection.close();
  }
  throw new Error('pipeline bench: the lba did not start consuming within 30 s');
}

/** An OTLP/HTTP receiver that accepts and counts export requests, as a collector would. */
async function startSpanSink(): Promise<{
  url: string;
  requests(): number;
  close(): Promise<void>;
}> {
  let requests = 0;
  const server = createServer((request, response) => {
    request.resume();
    request.on('end', () => {
      requests++;
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests: () => requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/**
 * The cost of tracing at full speed: the end-to-end pipeline with every batch traced (spans
 * exported over OTLP to a local receiver) against the same run untraced, alternating, `runs`
 * times each; the median of each and the overhead between them.
 */
export async function benchTracing(
  options: PipelineBenchOptions & { runs?: number },
): Promise<Measurement[]> {
  const measured = workload(options.events ?? 600_000);
  const warmUp = warmUpOf(measured);
  const sink = await startSpanSink();
  const off: Measurement[] = [];
  const on: Measurement[] = [];
  try {
    for (let run = 0; run < (options.runs ?? 5); run++) {
      off.push(await endToEnd(options.urls, measured, warmUp));
      on.push(
        await endToEnd(
          options.urls,
          measured,
          warmUp,
          { OTEL_EXPORTER_OTLP_ENDPOINT: sink.url, OTEL_TRACES_SAMPLER_ARG: '1' },
          'pipeline.end-to-end.traced',
        ),
      );
    }
  } finally {
    await sink.close();
  }
  // Each figure is its median run; `perSecond` is the best run, as elsewhere in the benches.
  const untraced = summarize('tracing.off', off, {
    note: 'end to end, metrics on, no spans exported',
  });
  const traced = summarize('tracing.on', on, {
    note: 'end to end, every batch traced (sampling 1.0), spans exported over OTLP/HTTP',
    // Of every traced run, warm-ups included: spans leave in batches, not per measured pass.
    exportRequests: sink.requests(),
  });
  const ratio = traced.medianPerSecond / untraced.medianPerSecond;
  return [untraced, { ...traced, overheadPct: Math.round((1 - ratio) * 1000) / 10 }];
}
