import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readFileSync, readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { createNames, mintFeedToken } from '../core/index.ts';
import { openFileLimit } from '../loadtest/swarm-main.ts';
import { runSwarm, type SwarmResult } from '../loadtest/swarm.ts';
import { deleteKeys } from '../testing/services-admin.ts';
import { createBoardChurn, type BoardChurn } from './board-churn.ts';
import { cpuSeconds, type Measurement } from './measure.ts';
import { freePort, rssMiB } from '../replay/lab-probe.ts';

const CLI = fileURLToPath(new URL('../cli/main.ts', import.meta.url));

/** Options of {@link benchFeed}. */
export interface FeedBenchOptions {
  redisUrl: string;
  /** Client counts to try, in order; the ladder stops at the first that does not hold. */
  ladder?: number[];
  /** Measured window per step. @default 20 */
  stepSeconds?: number;
  /** @default 100 */
  p99LimitMs?: number;
  /** @default ['board:gainers', 'board:volume', 'board:trades'] */
  channels?: string[];
  /** Worker threads of the swarm. @default availableParallelism() */
  shards?: number;
  /** Feed processes sharing the port (`openbell feed --processes`). @default availableParallelism() */
  processes?: number;
}

/** The default ladder of {@link benchFeed}. */
export const FEED_LADDER = [500, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10_000];

const log = pino({ level: 'warn' }, pino.destination(2));

/**
 * The trader feed under N clients: `openbell feed` as a child process on a fresh namespace, boards
 * changing 4 times a second (driven from this process), and a swarm (also in this process, its
 * clients spread over worker threads so one thread parsing every frame does not queue them) of N
 * clients each subscribed to three boards, for each N of the ladder. A step holds when every client
 * subscribed, none was disconnected by the server, and the delivery p99 stays within the limit.
 * Each step also runs a 10-client probe in a process of its own (see {@link runProbe}) and reports
 * the CPU of the feed and of this process, so a reader can tell which side made the latency.
 */
export async function benchFeed(options: FeedBenchOptions): Promise<Measurement[]> {
  const ladder = options.ladder ?? FEED_LADDER;
  const stepSeconds = options.stepSeconds ?? 20;
  const limitMs = options.p99LimitMs ?? 100;
  const channels = options.channels ?? ['board:gainers', 'board:volume', 'board:trades'];
  const shards = options.shards ?? availableParallelism();
  const namespace = `benchfeed-${randomBytes(4).toString('hex')}`;
  const names = createNames({ namespace });
  const redis = new Redis(options.redisUrl);
  const churn = createBoardChurn({ redis, names, log });
  const secret = randomBytes(24).toString('hex');
  let feed: ChildProcess | undefined;
  const measurements: Measurement[] = [];
  try {
    await churn.start();
    const port = await freePort();
    feed = startFeed(
      options.redisUrl,
      namespace,
      port,
      secret,
      options.processes ?? availableParallelism(),
    );
    const base = `http://127.0.0.1:${port}`;
    await waitReady(base, feed);
    const limits = {
      driver: openFileLimit(),
      feed: feed.pid === undefined ? undefined : openFileLimit(feed.pid),
    };
    let held: Measurement | undefined;
    for (const clients of ladder) {
      const fdNeeded = clients + 256;
      if (Object.values(limits).some((limit) => limit !== undefined && limit < fdNeeded)) {
        measurements.push(fdStop(clients, limits));
        break;
      }
      const step = await runStep({
        base,
        feed,
        churn,
        secret,
        channels,
        clients,
        stepSeconds,
        shards,
      });
      const m = stepMeasurement(step, limitMs);
      measurements.push(m);
      process.stderr.write(`bench feed: ${clients} clients: ${summary(m)}\n`);
      if (m['held'] !== true) break;
      held = m;
      await new Promise((r) => setTimeout(r, 2000));
    }
    measurements.push(maxClients(held, limitMs, limits));
    return measurements;
  } finally {
    if (feed !== undefined && feed.exitCode === null) {
      feed.kill('SIGTERM');
      await once(feed, 'exit');
    }
    await churn.close();
    await deleteKeys(redis, `${namespace}:*`);
    redis.disconnect();
  }
}

interface StepInput {
  base: string;
  feed: ChildProcess;
  churn: BoardChurn;
  secret: string;
  channels: string[];
  clients: number;
  stepSeconds: number;
  shards: number;
}

interface Step {
  result: SwarmResult;
  probe: SwarmResult | undefined;
  feedCpuCores: number;
  feedRssMiB: number;
  boardRoundsPerSecond: number;
  feedStats: Record<string, number>;
}

async function runStep(input: StepInput): Promise<Step> {
  const { feed, churn } = input;
  const url = `${input.base.replace('http', 'ws')}/ws`;
  const before = await feedStats(input.base);
  let window = { at: 0, cpu: 0, rounds: 0 };
  let feedCpuCores = 0;
  let boardRoundsPerSecond = 0;
  let probe: Promise<SwarmResult | undefined> | undefined;
  const sample = () => ({
    at: performance.now(),
    cpu: treePids(feed.pid!).reduce((sum, pid) => sum + cpuSeconds(pid), 0),
    rounds: churn.stats.rounds,
  });
  const result = await runSwarm({
    url,
    clients: input.clients,
    channels: input.channels,
    top: 20,
    durationMs: input.stepSeconds * 1000,
    // About 1,000 handshakes a second: each costs the feed a token verification.
    rampMs: input.clients,
    // Long enough for the probe process to start and subscribe before the window.
    warmupMs: 3000,
    connectTimeoutMs: 30_000,
    shards: input.shards,
    token: (n) => mintFeedToken(input.secret, { sub: `trader-${n}`, ttlSeconds: 3600 }),
    onPhase: (phase) => {
      if (phase === 'warmup')
        probe = runProbe(url, input.secret, input.channels, input.stepSeconds * 1000 - 3000);
      else if (phase === 'measuring') window = sample();
      else if (phase === 'closing') {
        const now = sample();
        const seconds = (now.at - window.at) / 1000;
        feedCpuCores = round3((now.cpu - window.cpu) / seconds);
        boardRoundsPerSecond = round3((now.rounds - window.rounds) / seconds);
      }
    },
  });
  const probed = await probe;
  if (feed.exitCode !== null) throw new Error(`bench feed: the feed exited (${feed.exitCode})`);
  const after = await feedStats(input.base);
  const delta = (key: string): number => (after[key] ?? 0) - (before[key] ?? 0);
  return {
    result,
    probe: probed,
    feedCpuCores,
    feedRssMiB: (await Promise.all(treePids(feed.pid!).map(rssMiB))).reduce<number>(
      (sum, mib) => sum + (mib ?? 0),
      0,
    ),
    boardRoundsPerSecond,
    feedStats: {
      conflations: delta('conflations'),
      slowCloses: delta('slowCloses'),
      deadPeers: delta('deadPeers'),
      tickErrors: delta('tickErrors'),
      lastTickMs: round3(after['lastTickMs'] ?? 0),
    },
  };
}

const SWARM_MAIN = pathToFileURL(
  fileURLToPath(new URL('../loadtest/swarm-main.ts', import.meta.url)),
);
/** Clients of the probe: few enough that their own process idles. */
const PROBE_CLIENTS = 10;

/**
 * A handful of clients in a process of their own, subscribed after the load's clients (so last in
 * their tick slices' fan-outs): their latency is the feed's delivery without the load driver's
 * queueing, which tells whether the driver or the feed makes the load's latency.
 * Resolves undefined when the probe fails (its stderr says why).
 */
async function runProbe(
  url: string,
  secret: string,
  channels: string[],
  durationMs: number,
): Promise<SwarmResult | undefined> {
  const script = `const { swarmCommand } = await import(${JSON.stringify(SWARM_MAIN.href)}); await swarmCommand().parseAsync(process.argv.slice(1), { from: 'user' });`;
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      script,
      '--',
      ...['--url', url, '--clients', String(PROBE_CLIENTS), '--channels', channels.join(',')],
      ...['--top', '20', '--duration', `${Math.max(1000, durationMs)}ms`, '--ramp', '0s'],
      ...['--warmup', '2s', '--shared-token', '--shards', '1', '--json'],
    ],
    { env: { ...process.env, FEED_JWT_SECRET: secret }, stdio: ['ignore', 'pipe', 'ignore'] },
  );
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) return undefined;
  try {
    return JSON.parse(out) as SwarmResult;
  } catch {
    // Not the JSON of a finished swarm: no probe figures for this step.
    return undefined;
  }
}

function stepMeasurement(step: Step, limitMs: number): Measurement {
  const r = step.result;
  const p99 = r.latencyMs.p99;
  const held =
    r.subscribed === r.clients && r.disconnects.total === 0 && p99 !== null && p99 <= limitMs;
  const perSecond = r.window.seconds === 0 ? 0 : Math.round(r.window.updates / r.window.seconds);
  return {
    name: `feed.clients-${r.clients}`,
    items: r.window.updates,
    runs: 1,
    perSecond,
    medianPerSecond: perSecond,
    nsPerItem: perSecond === 0 ? 0 : Math.round(1e9 / perSecond),
    clients: r.clients,
    held,
    subscribed: r.subscribed,
    latencyMs: r.latencyMs,
    updatesPerSecondPerClient: r.window.updatesPerSecondPerClient,
    windowSeconds: r.window.seconds,
    windowSnapshots: r.window.snapshots,
    gaps: r.gaps.total,
    disconnects: r.disconnects,
    connectFailures: r.connectFailures,
    connectSeconds: r.connectSeconds,
    errors: r.errors,
    driverCpuCores: r.driver.cpuCores,
    driverShards: r.driver.shards,
    driverEventLoopDelayP99Ms: r.driver.eventLoopDelayP99Ms,
    probeLatencyMs: step.probe?.latencyMs ?? null,
    probeUpdatesPerSecondPerClient: step.probe?.window.updatesPerSecondPerClient ?? null,
    feedCpuCores: step.feedCpuCores,
    feedRssMiB: step.feedRssMiB,
    boardRoundsPerSecond: step.boardRoundsPerSecond,
    feed: step.feedStats,
  };
}

/** The ladder's verdict: the largest client count that held (0 when none did). */
function maxClients(
  held: Measurement | undefined,
  limitMs: number,
  fdLimits: Record<string, number | undefined>,
): Measurement {
  return {
    name: 'feed.max-clients',
    items: held === undefined ? 0 : (held['clients'] as number),
    runs: 1,
    perSecond: held?.perSecond ?? 0,
    medianPerSecond: held?.medianPerSecond ?? 0,
    nsPerItem: held?.nsPerItem ?? 0,
    maxClients: held === undefined ? 0 : held['clients'],
    p99LimitMs: limitMs,
    p99Ms: held === undefined ? null : (held['latencyMs'] as SwarmResult['latencyMs']).p99,
    openFileLimits: fdLimits,
    note: 'feed (child process) + board churn and swarm (this process, clients on worker threads) + probe (child process), co-located',
  };
}

function fdStop(clients: number, limits: Record<string, number | undefined>): Measurement {
  return {
    name: `feed.clients-${clients}`,
    items: 0,
    runs: 0,
    perSecond: 0,
    medianPerSecond: 0,
    nsPerItem: 0,
    clients,
    held: false,
    skipped: `file descriptors: ${clients} clients need ~${clients + 256} per process; ulimit -n is driver ${limits['driver']}, feed ${limits['feed']}`,
  };
}

function summary(m: Measurement): string {
  const l = m['latencyMs'] as SwarmResult['latencyMs'];
  const p = m['probeLatencyMs'] as SwarmResult['latencyMs'] | null;
  return `${m['held'] === true ? 'held' : 'FAILED'}: p50 ${l.p50} p99 ${l.p99} max ${l.max} ms (probe p50 ${p?.p50 ?? '–'} p99 ${p?.p99 ?? '–'} ms), ${String(m['updatesPerSecondPerClient'])} updates/s per client, disconnects ${(m['disconnects'] as { total: number }).total}, subscribed ${String(m['subscribed'])}, feed ${String(m['feedCpuCores'])} cores, driver ${String(m['driverCpuCores'])} cores in ${String(m['driverShards'])} threads (busiest event-loop p99 ${String(m['driverEventLoopDelayP99Ms'])} ms)`;
}

/** Starts `openbell feed` on `port`, with the per-address limit lifted (every client is local). */
function startFeed(
  redisUrl: string,
  namespace: string,
  port: number,
  secret: string,
  processes: number,
): ChildProcess {
  const child = spawn(
    process.execPath,
    [
      CLI,
      'feed',
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--processes',
      String(processes),
      '--namespace',
      namespace,
      '--redis-url',
      redisUrl,
      '--feed-max-connections-per-ip',
      '1000000',
    ],
    {
      env: { ...process.env, FEED_JWT_SECRET: secret, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  // Its log lines (warnings and worse) go to stderr: stdout carries the bench's JSON.
  child.stdout.pipe(process.stderr);
  return child;
}

async function waitReady(base: string, feed: ChildProcess): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (feed.exitCode !== null)
      throw new Error(`bench feed: \`openbell feed\` exited with ${feed.exitCode}`);
    const status = await fetch(`${base}/readyz`).then(
      (response) => response.status,
      () => 0,
    );
    if (status === 200) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('bench feed: `openbell feed` was not ready within 30 s');
}

async function feedStats(base: string): Promise<Record<string, number>> {
  const response = await fetch(`${base}/health`);
  const body = (await response.json()) as { feed?: Record<string, unknown> };
  const numbers: Record<string, number> = {};
  for (const [key, value] of Object.entries(body.feed ?? {}))
    if (typeof value === 'number') numbers[key] = value;
  return numbers;
}

/** A process and its children (the feed's `--processes` workers), from /proc. */
function treePids(pid: number): number[] {
  const children = readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((name) => {
      try {
        const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false; // It exited while we looked.
      }
    })
    .map(Number);
  return [pid, ...children];
}

const round3 = (n: number): number => Math.round(n * 1000) / 1000;
