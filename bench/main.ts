import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { ensureServices } from '../services/ensure.ts';
import { benchDecode } from './decode.ts';
import { benchFeed } from './feed.ts';
import type { Measurement } from './measure.ts';
import { benchPipeline, benchTracing } from './pipeline.ts';
import { benchReplay } from './replay.ts';

/** A goal from an issue, checked against a measured figure. */
interface Goal {
  name: string;
  measurement: string;
  target: number;
  actual: number;
  met: boolean;
}

const { values } = parseArgs({
  options: {
    only: { type: 'string', multiple: true },
    events: { type: 'string' },
    out: { type: 'string', default: 'bench-results' },
    // The feed suite: client counts to try (comma-separated) and seconds measured per step.
    'feed-ladder': { type: 'string' },
    'feed-seconds': { type: 'string' },
    // Worker threads of the feed suite's swarm (default: available parallelism).
    'feed-shards': { type: 'string' },
    'feed-processes': { type: 'string' },
  },
});
const events = values.events === undefined ? undefined : Number(values.events);
const feedLadder = values['feed-ladder']?.split(',').map(Number);
if (feedLadder?.some((n) => !Number.isSafeInteger(n) || n < 1) === true)
  throw new Error(`--feed-ladder: expected whole numbers ≥ 1, got ${values['feed-ladder']}`);
const feedSeconds =
  values['feed-seconds'] === undefined ? undefined : Number(values['feed-seconds']);
if (feedSeconds !== undefined && !(feedSeconds > 0))
  throw new Error(`--feed-seconds: expected a positive number, got ${values['feed-seconds']}`);
const feedProcesses =
  values['feed-processes'] === undefined ? undefined : Number(values['feed-processes']);
if (feedProcesses !== undefined && !(Number.isSafeInteger(feedProcesses) && feedProcesses >= 1))
  throw new Error(`--feed-processes: expected a whole number ≥ 1, got ${values['feed-processes']}`);
const feedShards = values['feed-shards'] === undefined ? undefined : Number(values['feed-shards']);
if (feedShards !== undefined && !(Number.isSafeInteger(feedShards) && feedShards >= 1))
  throw new Error(`--feed-shards: expected a whole number ≥ 1, got ${values['feed-shards']}`);
const services = async () => {
  const log = pino({ name: 'bench-services', level: 'warn' }, pino.destination(2));
  const { urls } = await ensureServices({
    projectDir: fileURLToPath(new URL('..', import.meta.url)),
    env: process.env,
    log,
    only: ['redis', 'rabbitmq'],
  });
  return urls;
};
const pipelineOptions = async () => {
  const { redisUrl, amqpUrl, rabbitmqManagementUrl } = await services();
  if (redisUrl === undefined || amqpUrl === undefined || rabbitmqManagementUrl === undefined)
    throw new Error('bench: services missing');
  return {
    urls: { redisUrl, amqpUrl, rabbitmqManagementUrl },
    ...(events === undefined ? {} : { events }),
  };
};
const suites: Record<string, () => Measurement[] | Promise<Measurement[]>> = {
  decode: () => benchDecode(events === undefined ? {} : { events }),
  replay: async () => {
    const { amqpUrl } = await services();
    if (amqpUrl === undefined) throw new Error('bench: RabbitMQ missing');
    return benchReplay({ amqpUrl });
  },
  pipeline: async () => benchPipeline(await pipelineOptions()),
  // Not in the default set: ten end-to-end runs (`--only tracing`).
  tracing: async () => benchTracing(await pipelineOptions()),
  feed: async () => {
    const { redisUrl } = await services();
    if (redisUrl === undefined) throw new Error('bench: Redis missing');
    return benchFeed({
      redisUrl,
      ...(feedLadder === undefined ? {} : { ladder: feedLadder }),
      ...(feedSeconds === undefined ? {} : { stepSeconds: feedSeconds }),
      ...(feedShards === undefined ? {} : { shards: feedShards }),
      ...(feedProcesses === undefined ? {} : { processes: feedProcesses }),
    });
  },
};
const selected = values.only ?? Object.keys(suites).filter((name) => name !== 'tracing');
for (const name of selected) {
  if (!(name in suites))
    throw new Error(
      `unknown suite ${JSON.stringify(name)}; have ${Object.keys(suites).join(', ')}`,
    );
}

const results: Record<string, Measurement[]> = {};
for (const name of selected) {
  process.stderr.write(`bench: ${name}…\n`);
  results[name] = await suites[name]!();
}

const goals: Goal[] = [];
const figure = (suite: string, name: string): number | undefined =>
  results[suite]?.find((m) => m.name === name)?.perSecond;
const decodeBatchRate = figure('decode', 'msgpack.decodeBatch');
if (decodeBatchRate !== undefined) {
  goals.push({
    name: 'decode msgpack batches on one core (events/s)',
    measurement: 'decode/msgpack.decodeBatch',
    target: 1_000_000,
    actual: decodeBatchRate,
    met: decodeBatchRate >= 1_000_000,
  });
}

const endToEndRuns = results['pipeline']?.find((m) => m.name === 'pipeline.end-to-end');
const endToEnd = endToEndRuns?.perSecond;
const ratio = endToEndRuns?.['medianPassThroughRatio'] as number | undefined;
if (endToEnd !== undefined && ratio !== undefined) {
  goals.push({
    name: 'pipeline end to end (events/s)',
    measurement: 'pipeline/pipeline.end-to-end',
    target: 200_000,
    actual: endToEnd,
    met: endToEnd >= 200_000,
  });
  goals.push({
    name: 'pipeline / raw broker pass-through (median of the runs, each against its own pass-through run)',
    measurement: 'pipeline/pipeline.end-to-end medianPassThroughRatio',
    target: 0.2,
    actual: ratio,
    met: ratio >= 0.2,
  });
}

for (const [measurement, target, what] of [
  ['replay.file-to-broker', 500_000, 'replay from file to the broker (events/s)'],
  ['replay.websocket', 200_000, 'replay over the Massive-compatible WebSocket (events/s)'],
] as const) {
  const actual = figure('replay', measurement);
  if (actual !== undefined)
    goals.push({
      name: what,
      measurement: `replay/${measurement}`,
      target,
      actual,
      met: actual >= target,
    });
}

const feedMax = results['feed']?.find((m) => m.name === 'feed.max-clients');
if (feedMax !== undefined) {
  const maxClients = feedMax['maxClients'] as number;
  goals.push({
    name: 'feed: connected traders, 3 boards at 4 updates/s, p99 delivery ≤ 100 ms, no unintended disconnects (largest N that held)',
    measurement: 'feed/feed.max-clients',
    target: 5000,
    actual: maxClients,
    met: maxClients >= 5000,
  });
}

const report = {
  at: new Date().toISOString(),
  machine: {
    node: process.version,
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: availableParallelism(),
    memoryGiB: Math.round(totalmem() / 2 ** 30),
  },
  results,
  goals,
};
const json = `${JSON.stringify(report, null, 2)}\n`;
process.stdout.write(json);
mkdirSync(values.out, { recursive: true });
writeFileSync(`${values.out}/bench-${report.at.replace(/[:.]/g, '-')}.json`, json);
for (const goal of goals)
  process.stderr.write(
    `${goal.met ? 'met ' : 'MISSED'} ${goal.name}: ${goal.actual} (goal ${goal.target})\n`,
  );
