import amqp from 'amqplib';
import { Redis } from 'ioredis';
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import {
  computeBoards,
  createBoardStore,
  createNames,
  decodeFrame,
  deleteTopology,
  registerScrapeTarget,
  newYorkTimeToMs,
  openRecording,
  tradingDateOf,
  type BoardOptions,
  type ConnectionOptions,
  type MarketEvent,
  type Recording,
} from '../core/index.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import {
  startPrivateRabbitmq,
  startPrivateRedis,
  type PrivateService,
} from '../services/private.ts';
import { faultDue, judgeRecovery, type FaultSpec } from './lab-faults.ts';
import { checkLedger } from './lab-ledger.ts';
import { createLagWindows, freePort, getJson, rssMiB, type AnalyzerHealth } from './lab-probe.ts';
import { judge } from './lab-judge.ts';
import type { MassiveServer } from './massive-server.ts';
import { judgeFeed, startTraders, type LabTraders } from './lab-traders.ts';
import type { LabFault, LabFeedTotals, LabReport, LabRun, LabSample } from './lab-types.ts';
import { startRunPrometheus, waitForTargets, type RunPrometheus } from './lab-prometheus.ts';
import { rangeOf } from './replayer.ts';
import { serveReplay } from './serve.ts';

const CLI = fileURLToPath(new URL('../cli/main.ts', import.meta.url));

/** Options of {@link runLab}. */
export interface LabOptions {
  recordingPath: string;
  speed: string;
  from?: string | undefined;
  to?: string | undefined;
  lba: number;
  connection: ConnectionOptions;
  board: BoardOptions;
  lagP99LimitMs: number;
  outDir: string;
  runId: string;
  log: Logger;
  /**
   * Also run the stampede on purpose and chart both: `poc` slows every analyzer by
   * {@link LabOptions.pocDelayMs} per batch, as the original's per-event processing did.
   */
  compare?: 'poc' | undefined;
  /** The per-batch delay of the `poc` run. @default 100 */
  pocDelayMs?: number;
  /** Traders connected to the mdp's feed for the run (the swarm driver); 0 for none. @default 0 */
  traders?: number;
  /**
   * A Prometheus scraping the run (replay/lab-prometheus.ts): every process is registered as a
   * target labelled with the run, and `replayMetrics` is the lab's own `/metrics` (the replayer).
   */
  prometheus?: { server: RunPrometheus; replayMetrics?: string | undefined } | undefined;
  /**
   * Run a Prometheus for the lab (this binary) with its data in `<outDir>/prometheus`, and
   * register the lab's own `/metrics` at `replayMetrics` (`host:port`) with it.
   */
  withPrometheus?: { binary: string; replayMetrics?: string | undefined } | undefined;
  /** Called with the finished report while the lab's Prometheus still runs (`lab --check`). */
  whilePrometheus?(report: LabReport, prometheusUrl: string): Promise<void>;
  /**
   * Faults to inject (`--fault`). A run with faults uses private Redis and RabbitMQ instances the
   * lab starts on free loopback ports and stops afterwards, never the services in `connection`.
   */
  faults?: readonly FaultSpec[];
  /** How long after a fault ends the lag p99 may take to be back under 1 s. @default 30000 */
  recoveryLimitMs?: number;
  /** The private services a fault run injects its faults into (set by {@link runLab}). */
  privateServices?: { redis: PrivateService; rabbitmq: PrivateService } | undefined;
}

/** A fault's wall-clock injection: does it and resolves once it is over, saying what it did. */
type Injector = (fault: FaultSpec) => Promise<string>;

/** Which pipeline a run exercises. */
interface Variant {
  topology: LabRun['topology'];
  injectDelayMs: number;
}

interface Role {
  name: string;
  child: ChildProcess;
  healthUrl: string;
  exit?: string;
  /** Killed on purpose by a fault: its exit is not a failure. */
  faulted?: boolean;
}

/** Runs the pipeline on a recording end to end and judges it; writes nothing but its logs. */
export async function runLabRun(
  options: LabOptions,
  recording: Recording,
  variant: Variant = { topology: 'default', injectDelayMs: 0 },
): Promise<LabRun> {
  const { log, connection, board } = options;
  // Names allow lowercase letters, digits, `-` and `_`: a run id is folded into that.
  const runKey = options.runId
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '')
    .slice(-16);
  const namespace = `lab-${runKey}-${variant.topology}`;
  const names = createNames({ namespace });
  const date = labDate(recording);
  const range = rangeOf(recording, options.from, options.to);
  const redis = new Redis(connection.redisUrl, { maxRetriesPerRequest: 2 });
  const store = createBoardStore({ redis, names, board });
  const prevCloses = new Map(Object.entries(recording.meta.prevClose ?? {}));
  await store.setPrevCloses(date, prevCloses);

  const env = {
    ...process.env,
    REDIS_URL: connection.redisUrl,
    AMQP_URL: connection.amqpUrl,
    OPENBELL_NAMESPACE: namespace,
    OPENBELL_WINDOW_MS: String(board.windowMs),
    OPENBELL_MOMENTUM_MIN_HISTORY_MS: String(board.momentumMinHistoryMs),
    OPENBELL_INJECT_DELAY_MS: String(variant.injectDelayMs),
    LOG_LEVEL: 'warn',
  };
  const roles: Role[] = [];
  // The `run` label of the run's series: what `openbell check --run` selects.
  const runLabel =
    variant.topology === 'default' ? options.runId : `${options.runId}-${variant.topology}`;
  const unregister: (() => Promise<void>)[] = [];
  const scrape = async (service: string, instance: string, address: string): Promise<void> => {
    const prometheus = options.prometheus?.server;
    if (prometheus === undefined) return;
    const labels = { service, instance, run: runLabel };
    const name = `${runKey}-${variant.topology}-${instance}`;
    unregister.push(await registerScrapeTarget(prometheus.targetsDir, name, { address, labels }));
  };
  const died = new AbortController();
  let stopping = false;
  const spawnRole = async (
    name: string,
    args: string[],
    extra: Record<string, string>,
  ): Promise<Role> => {
    const port = await freePort();
    const logFile = createWriteStream(join(options.outDir, `${variant.topology}-${name}.log`));
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...env, ...extra, [name === 'mdp' ? 'MDP_PORT' : 'LBA_HTTP_PORT']: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.pipe(logFile);
    child.stderr?.pipe(logFile);
    const role: Role = { name, child, healthUrl: `http://127.0.0.1:${port}/health` };
    child.once('exit', (code, signal) => {
      role.exit = signal ?? String(code);
      // A process that dies mid-run stops the replay at once (its clients may be gone for good),
      // unless a fault killed it on purpose.
      if (!stopping && role.faulted !== true)
        died.abort(new Error(`${name} exited (${role.exit}) during the run`));
    });
    roles.push(role);
    await scrape(name === 'mdp' ? 'mdp' : 'lba', name, `127.0.0.1:${port}`);
    return role;
  };

  for (let i = 1; i <= options.lba; i++) await spawnRole(`lba-${i}`, ['lba'], {});
  const replayMetrics = options.prometheus?.replayMetrics;
  if (replayMetrics !== undefined) await scrape('replay', 'replayer', replayMetrics);
  const samples: LabSample[] = [];
  const lag = createLagWindows();
  const started = Date.now();
  let sampler: NodeJS.Timeout | undefined;
  let replayStats: { events: number; marketUs: number | undefined } = {
    events: 0,
    marketUs: undefined,
  };
  let last = { at: Date.now(), sent: 0, applied: 0, byType: {} as Record<string, number> };
  let cumulative = { received: 0, applied: 0, drops: 0, expired: 0, maxlen: 0 };
  const apiKey = `lab-${options.runId}`;

  const sample = async (): Promise<void> => {
    const healths = await Promise.all(
      roles.map(async (r) => [r, await getJson(r.healthUrl)] as const),
    );
    for (const [role, health] of healths) if (health !== undefined) lastHealth[role.name] = health;
    const rss: Record<string, number> = {
      'lab+replayer': round1(process.memoryUsage().rss / 1048576),
    };
    let applied = 0;
    let expired = 0;
    let maxlen = 0;
    let byType: Record<string, number> = {};
    let drops = 0;
    for (const [role, health] of healths) {
      const memory = await rssMiB(role.child.pid);
      if (memory !== undefined) rss[role.name] = memory;
      const analyzer = (health?.['analyzer'] ?? undefined) as AnalyzerHealth | null | undefined;
      if (analyzer) {
        applied += analyzer.events;
        expired += analyzer.consumer.deadLettered['expired'] ?? 0;
        maxlen += analyzer.consumer.deadLettered['maxlen'] ?? 0;
        lag.add(role.name, analyzer.lagHistogram);
      }
      const listener = health?.['listener'] as
        { events: Record<string, number>; droppedEvents: number } | undefined;
      if (listener) {
        byType = listener.events;
        drops = listener.droppedEvents;
      }
    }
    const received = Object.values(byType).reduce((a, b) => a + b, 0);
    const now = Date.now();
    const seconds = Math.max(0.001, (now - last.at) / 1000);
    const window = lag.take();
    cumulative = {
      received: Math.max(cumulative.received, received),
      applied: Math.max(cumulative.applied, applied),
      drops: Math.max(cumulative.drops, drops),
      expired: Math.max(cumulative.expired, expired),
      maxlen: Math.max(cumulative.maxlen, maxlen),
    };
    samples.push({
      wallMs: now,
      marketMs: (replayStats.marketUs ?? range.fromUs ?? recording.totals.firstUs ?? 0) / 1000,
      sentPerSec: Math.round((replayStats.events - last.sent) / seconds),
      inPerSec: Object.fromEntries(
        Object.entries(byType).map(([type, n]) => [
          type,
          Math.round((n - (last.byType[type] ?? 0)) / seconds),
        ]),
      ),
      appliedPerSec: Math.round((cumulative.applied - last.applied) / seconds),
      queueDepth: await queueDepth(connection.amqpUrl, names.queue('analyzers')),
      lagP50Ms: window.p50,
      lagP99Ms: window.p99,
      listenerDrops: cumulative.drops,
      expired: cumulative.expired,
      maxLengthDrops: cumulative.maxlen,
      feedLatencyP99Ms: traders?.recentLatencyP99Ms ?? null,
      rssMiB: rss,
    });
    last = { at: now, sent: replayStats.events, applied: cumulative.applied, byType };
  };

  const lastHealth: Record<string, Record<string, unknown>> = {};
  const faults = options.faults ?? [];
  const stalls = faults.some((f) => f.kind === 'massive-stall');
  let massive: MassiveServer | undefined;
  const injected: LabFault[] = [];
  const inject: Injector = async (fault) => {
    const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    const services = options.privateServices;
    switch (fault.kind) {
      case 'rabbitmq-restart':
      case 'rabbitmq-kill':
      case 'redis-restart':
      case 'redis-pause': {
        if (services === undefined) throw new Error(`${fault.spec}: no private services to fault`);
        const service = fault.kind.startsWith('redis') ? services.redis : services.rabbitmq;
        if (fault.kind === 'redis-pause') {
          service.pause();
          await wait(fault.durationMs);
          service.resume();
          return `paused Redis for ${fault.durationMs} ms`;
        }
        await (fault.kind === 'rabbitmq-kill' ? service.kill() : service.stop());
        await wait(fault.durationMs);
        await service.start();
        const how = fault.kind === 'rabbitmq-kill' ? 'killed (SIGKILL)' : 'stopped';
        return `${how} ${service.name}, started it again ${fault.durationMs} ms later`;
      }
      case 'lba-kill': {
        const victim = roles.find((r) => r.name.startsWith('lba') && r.exit === undefined);
        if (victim === undefined) return 'no lba was running';
        victim.faulted = true;
        victim.child.kill('SIGKILL');
        await exited(victim);
        await wait(fault.durationMs);
        const next = `${victim.name}b`;
        await spawnRole(next, ['lba'], {});
        return `killed ${victim.name} (SIGKILL), started ${next} ${fault.durationMs} ms later`;
      }
      case 'massive-drop':
        massive?.dropConnections();
        await wait(fault.durationMs);
        return 'dropped the connection to the mdp (1006)';
      case 'massive-stall':
        massive?.stall(true);
        await wait(fault.durationMs);
        massive?.stall(false);
        return `sent no data for ${fault.durationMs} ms, the connection kept open`;
    }
  };
  const pending = [...faults];
  const running: Promise<void>[] = [];
  let faultTimer: NodeJS.Timeout | undefined;
  const marketNowMs = (): number =>
    (replayStats.marketUs ?? range.fromUs ?? recording.totals.firstUs ?? 0) / 1000;
  const watchFaults = (startedAtMs: number): void => {
    faultTimer = setInterval(() => {
      for (const fault of [...pending]) {
        const marketUs = replayStats.marketUs;
        const now = {
          sinceStartMs: Date.now() - startedAtMs,
          marketMs: marketUs === undefined ? undefined : marketUs / 1000,
        };
        if (!faultDue(fault, now, date)) continue;
        pending.splice(pending.indexOf(fault), 1);
        const startWallMs = Date.now();
        const startMarketMs = marketNowMs();
        log.warn({ fault: fault.spec }, 'injecting a fault');
        running.push(
          inject(fault).then(
            (detail) => {
              injected.push({
                kind: fault.kind,
                spec: fault.spec,
                startWallMs,
                endWallMs: Date.now(),
                startMarketMs,
                endMarketMs: marketNowMs(),
                detail,
              });
              log.warn({ fault: fault.spec, detail }, 'fault over');
            },
            (error: unknown) => died.abort(error),
          ),
        );
      }
    }, 100);
  };

  /** Whether the ledger balances now: every event accepted applied or counted dropped. */
  const quiet = async (): Promise<boolean> => {
    const live = roles.filter((r) => r.exit === undefined);
    const health = Object.fromEntries(
      await Promise.all(live.map(async (r) => [r.name, await getJson(r.healthUrl)] as const)),
    );
    try {
      const { balance } = checkLedger({ health, dates: [await store.ledger(date)] });
      return balance.accepted > 0 && balance.balanced;
    } catch {
      return false;
    }
  };

  let replaySummary: Awaited<ReturnType<typeof serveReplay>> | undefined;
  let traders: LabTraders | undefined;
  let feed: LabFeedTotals | undefined;
  try {
    replaySummary = await serveReplay({
      recording,
      log,
      speed: options.speed,
      from: options.from,
      to: options.to,
      signal: died.signal,
      server: {
        host: '127.0.0.1',
        port: 0,
        apiKey,
        waitClients: 1,
        slowConsumerBytes: 64 * 1024 * 1024,
        onListening: (server) => {
          massive = server;
          void spawnRole('mdp', ['mdp', '--no-analyzer', '--feed-insecure'], {
            MASSIVE_WS_URL: server.url,
            MASSIVE_API_KEY: apiKey,
            MASSIVE_TOPICS: 'A.*,AM.*,T.*',
            // Every lab trader connects from 127.0.0.1, and so do the health polls and scrapes
            // (a connection counts against its address until its request is in).
            FEED_MAX_CONNECTIONS_PER_IP: String(Math.max(100, (options.traders ?? 0) + 100)),
            // The lab's clock is the recording's, not the wall's: a stall is judged at any hour,
            // quickly when the run stalls the feed on purpose, and never in the wait before it.
            MASSIVE_STALL_HOURS: 'always',
            MASSIVE_STALL_TIMEOUT_MS: stalls ? '3000' : '0',
          });
        },
      },
      beforeStart: async () => {
        const prometheus = options.prometheus?.server;
        if (prometheus === undefined) return;
        // Every process scraped once before the clock starts: the run's first seconds count.
        const expected = unregister.length;
        if (!(await waitForTargets(prometheus.url, runLabel, expected)))
          log.warn({ expected, run: runLabel }, 'prometheus does not scrape every process yet');
      },
      onStart: (run) => {
        replayStats = run.stats;
        sampler = setInterval(() => void sample(), 1000);
        if (faults.length > 0) watchFaults(Date.now());
        // The mdp is connected to the replayer, so its HTTP server and feed are up.
        const mdp = roles.find((r) => r.name === 'mdp');
        if ((options.traders ?? 0) > 0 && mdp !== undefined)
          traders = startTraders(
            mdp.healthUrl.replace(/^http/, 'ws').replace(/\/health$/, '/ws'),
            options.traders!,
          );
      },
    });
    // Faults still running (a restart that outlasts the replay) finish first.
    await Promise.all(running);
    // The replay is sent: wait (bounded) for the pipeline to account for every event.
    const deadline = Date.now() + (faults.length > 0 ? 90_000 : 30_000);
    while (Date.now() < deadline && !died.signal.aborted) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      const c = cumulative;
      if (faults.length > 0) {
        if (await quiet()) break;
      } else if (
        c.received >= replaySummary.events &&
        c.applied + c.expired + c.maxlen + c.drops >= c.received
      )
        break;
    }
  } finally {
    clearInterval(faultTimer);
    feed = await traders?.stop();
    // The run's last values must reach Prometheus before its processes go.
    if (options.prometheus !== undefined) await new Promise((resolve) => setTimeout(resolve, 2500));
    stopping = true;
    clearInterval(sampler);
    await sample();
    for (const role of roles) role.child.kill('SIGTERM');
    await Promise.all(roles.map((r) => exited(r)));
    await Promise.all(unregister.map((remove) => remove()));
  }
  const window = { startMs: started, endMs: Date.now() };

  const live = await store.readBoards(date, board.top, { freshMomentum: true });
  const oracle = computeBoards(await eventsOf(recording, range), date, prevCloses, board);
  const ledger = checkLedger({ health: lastHealth, dates: [await store.ledger(date)] });
  await cleanup(redis, connection.amqpUrl, namespace);
  redis.disconnect();

  const totalLag = lag.total();
  const exits = Object.fromEntries(
    roles.map((r) => [r.name, r.faulted === true ? 'killed by a fault' : (r.exit ?? 'running')]),
  );
  const totals: LabRun['totals'] = {
    sentEvents: replaySummary.events,
    receivedEvents: cumulative.received,
    appliedEvents: cumulative.applied,
    listenerDrops: cumulative.drops,
    expired: cumulative.expired,
    maxLengthDrops: cumulative.maxlen,
    lagP50Ms: totalLag.p50,
    lagP99Ms: totalLag.p99,
    lagMaxMs: totalLag.max,
    latenessP50Ms: replaySummary.lateness.p50Ms,
    latenessP99Ms: replaySummary.lateness.p99Ms,
    wallSeconds: Math.round((Date.now() - started) / 100) / 10,
    exits,
  };
  const notReceived = Math.max(0, replaySummary.events - cumulative.received);
  const checks = judge(totals, samples, live, oracle, {
    ...options,
    notReceived,
    faultWindows: injected,
    ledgerDropped: Object.values(ledger.balance.dropped).reduce((sum, n) => sum + n, 0),
  });
  checks.push(ledger.check);
  checks.push(...judgeRecovery(injected, samples, options.recoveryLimitMs ?? 30_000));
  if (feed !== undefined) checks.push(judgeFeed(feed));
  const { accepted, applied, dropped, unaccounted } = ledger.balance;
  return {
    label: variant.topology,
    topology: variant.topology,
    runLabel,
    window,
    samples,
    checks,
    totals,
    ...(feed === undefined ? {} : { feed }),
    ...(faults.length === 0 ? {} : { faults: injected }),
    ledger: { accepted, applied, dropped, unaccounted },
  };
}

/** Runs the lab and writes `summary.json` and `report.html` under `<outDir>`. */
export async function runLab(input: LabOptions): Promise<LabReport> {
  await mkdir(input.outDir, { recursive: true });
  const recording = await openRecording(input.recordingPath);
  const server =
    input.withPrometheus === undefined
      ? undefined
      : await startRunPrometheus(join(input.outDir, PROMETHEUS_DIR), input.withPrometheus.binary);
  const withServer: LabOptions =
    server === undefined
      ? input
      : { ...input, prometheus: { server, replayMetrics: input.withPrometheus?.replayMetrics } };
  // Faults are done to private services on free loopback ports, never to the user's.
  const privateDir =
    (input.faults?.length ?? 0) > 0 ? mkdtempSync(join(input.outDir, 'services-')) : undefined;
  const privateServices =
    privateDir === undefined
      ? undefined
      : await Promise.all([
          startPrivateRedis({ baseDir: privateDir, appendFsync: 'always' }),
          startPrivateRabbitmq({ baseDir: privateDir }),
        ]).then(([redis, rabbitmq]) => ({ redis, rabbitmq }));
  const options: LabOptions =
    privateServices === undefined
      ? withServer
      : {
          ...withServer,
          privateServices,
          connection: {
            ...withServer.connection,
            redisUrl: privateServices.redis.url,
            amqpUrl: privateServices.rabbitmq.url,
          },
        };
  try {
    const runs = [await runLabRun(options, recording)];
    if (options.compare === 'poc')
      runs.push(
        await runLabRun(options, recording, {
          topology: 'poc',
          injectDelayMs: options.pocDelayMs ?? 100,
        }),
      );
    const date = labDate(recording);
    const report: LabReport = {
      runId: options.runId,
      startedAt: new Date().toISOString(),
      recording: {
        path: options.recordingPath,
        date,
        frames: recording.totals.frames,
        events: recording.totals.events,
        fromMs: (recording.totals.firstUs ?? 0) / 1000,
        toMs: (recording.totals.lastUs ?? 0) / 1000,
      },
      settings: {
        speed: options.speed,
        lba: options.lba,
        analyzerInMdp: false,
        lagP99LimitMs: options.lagP99LimitMs,
        traders: options.traders ?? 0,
        faults: (options.faults ?? []).map((f) => f.spec),
        privateServices: privateServices !== undefined,
      },
      openMs: newYorkTimeToMs(date, '09:30'),
      runs,
      // The poc run is expected to fail its checks: the verdict is the default pipeline's.
      passed: runs[0]!.checks.every((c) => c.passed),
      ...(server === undefined ? {} : { prometheusDir: PROMETHEUS_DIR }),
    };
    await writeFile(join(options.outDir, 'summary.json'), `${JSON.stringify(report, null, 2)}\n`);
    const { renderReport } = await import('./report.ts');
    await writeFile(join(options.outDir, 'report.html'), await renderReport(report));
    if (server !== undefined) await options.whilePrometheus?.(report, server.url);
    return report;
  } finally {
    await server?.close();
    await recording.close();
    await privateServices?.redis.close();
    await privateServices?.rabbitmq.close();
    if (privateDir !== undefined) rmSync(privateDir, { recursive: true, force: true });
  }
}

/** Where a run's Prometheus data goes, under its report directory. */
export const PROMETHEUS_DIR = 'prometheus';

function labDate(recording: Recording): string {
  const date = recording.meta.date;
  if (typeof date === 'string') return date;
  return tradingDateOf((recording.totals.firstUs ?? 0) / 1000);
}

async function eventsOf(
  recording: Recording,
  range: ReturnType<typeof rangeOf>,
): Promise<MarketEvent[]> {
  const events: MarketEvent[] = [];
  for await (const chunk of recording.chunks(range))
    for (const frame of chunk)
      for (const event of decodeFrame(frame.data).events) events.push(event);
  return events;
}

async function queueDepth(amqpUrl: string, queue: string): Promise<number> {
  try {
    const connection = await amqp.connect(amqpUrl);
    try {
      const channel = await connection.createChannel();
      return (await channel.checkQueue(queue)).messageCount;
    } finally {
      await connection.close().catch(() => undefined);
    }
  } catch {
    return 0;
  }
}

/** Deletes the run's queues, exchanges and keys: a lab leaves nothing behind but its report. */
async function cleanup(redis: Redis, amqpUrl: string, namespace: string): Promise<void> {
  const names = createNames({ namespace });
  const connection = await amqp.connect(amqpUrl);
  try {
    await deleteTopology(await connection.createChannel(), names, ['analyzers']);
  } finally {
    await connection.close().catch(() => undefined);
  }
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${namespace}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.unlink(...keys);
  } while (cursor !== '0');
}

/** Resolves once a role's process has exited (at once if it already has). */
function exited(role: Role): Promise<void> {
  if (role.exit !== undefined) return Promise.resolve();
  return new Promise((resolve) => role.child.once('exit', () => resolve()));
}

const round1 = (n: number): number => Math.round(n * 10) / 10;
