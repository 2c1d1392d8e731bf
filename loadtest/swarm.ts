import type { Histogram } from 'hdr-histogram-js';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { WebSocket } from 'ws';
import { FEED_BEARER_PREFIX, FEED_SUBPROTOCOL } from '../core/index.ts';
import {
  SUBSCRIBE_ID,
  classifyConnectError,
  createLatencyHistogram,
  createSwarmTally,
  summarizeLatency,
  type GapCounts,
  type LatencySummary,
  type MessageCounts,
  type SwarmTally,
  type TallyClient,
} from './swarm-tally.ts';

/** Options of {@link runSwarm}. */
export interface SwarmOptions {
  /** The feed's WebSocket URL, e.g. `ws://127.0.0.1:8080/ws`. */
  url: string;
  clients: number;
  /** Channels every client subscribes to, in one `subscribe` message. */
  channels: readonly string[];
  /** Rows per board asked for; the server's default when absent. */
  top?: number;
  /** The measured window, after every client is connected and subscribed and the warm-up. */
  durationMs: number;
  /** Connections are started evenly over this time (handshakes still bounded). @default 0 */
  rampMs?: number;
  /** Quiet time between the last subscription and the window (the snapshot burst drains). @default 1000 */
  warmupMs?: number;
  /** Handshakes (open, auth, subscribe ack) in flight at once. @default 64 */
  maxConnecting?: number;
  /** Time a client has from its first byte to its subscribe ack. @default 10000 */
  connectTimeoutMs?: number;
  /** Bearer token for every client, or a function minting client `n`'s; none: no auth offered. */
  token?: string | ((n: number) => Promise<string>);
  /** `Origin` header to send (a Node client sends none by default). */
  origin?: string;
  /** Called every `progressIntervalMs` while the swarm runs. */
  onProgress?: (progress: SwarmProgress) => void;
  /** @default 1000 */
  progressIntervalMs?: number;
  /**
   * Called as each phase begins: `measuring` opens the window and `closing` ends it (to sample
   * other processes over the window, or start something once every client is subscribed).
   */
  onPhase?: (phase: SwarmProgress['phase']) => void;
  /** Ends the ramp or the window early; the result then covers what ran. */
  signal?: AbortSignal;
}

/** Defaults of {@link SwarmOptions}. */
export const SWARM_DEFAULTS: Required<
  Pick<
    SwarmOptions,
    'rampMs' | 'warmupMs' | 'maxConnecting' | 'connectTimeoutMs' | 'progressIntervalMs'
  >
> = {
  rampMs: 0,
  warmupMs: 1000,
  maxConnecting: 64,
  connectTimeoutMs: 10_000,
  progressIntervalMs: 1000,
};

/** What the swarm is doing, for progress lines. */
export interface SwarmProgress {
  phase: 'connecting' | 'warmup' | 'measuring' | 'closing';
  elapsedMs: number;
  /** Clients whose subscribe was acknowledged. */
  subscribed: number;
  connectFailures: number;
  /** Clients currently open. */
  open: number;
  updates: number;
  disconnects: number;
}

/** What a swarm measured: plain JSON. */
export interface SwarmResult {
  url: string;
  clients: number;
  channels: string[];
  top: number | null;
  /** Clients whose subscribe was acknowledged. */
  subscribed: number;
  /**
   * Clients that never got there, by reason: `http_429`, `ECONNREFUSED`, `close_4401`, `timeout`,
   * `subscribe_error` (an `error` answered the subscribe), `token` (minting failed)…
   */
  connectFailures: Record<string, number>;
  /** Time from a client's start to its subscribe ack. */
  connectMs: LatencySummary;
  /** From the first connection started to the last one settled. */
  connectSeconds: number;
  window: {
    seconds: number;
    updates: number;
    /** Snapshots inside the window: the feed conflated updates for a client it found slow. */
    snapshots: number;
    updatesPerSecondPerClient: number;
  };
  /** Client receive time − envelope `ts` of `update` messages inside the window. */
  latencyMs: LatencySummary;
  /** Latencies below zero (clocks disagreeing), recorded as 0. */
  negativeLatencies: number;
  /** Messages of the whole run by `type`. */
  messages: MessageCounts;
  /** `update` messages of the whole run by channel. */
  updatesByChannel: Record<string, number>;
  gaps: GapCounts;
  /** `error` messages by `code`. */
  errors: Record<string, number>;
  /** Subscribed clients closed by the server or the network (not by the swarm), by close code. */
  disconnects: { total: number; byCode: Record<string, number> };
  /** The load driver itself over the window: CPU cores used and its event-loop delay. */
  driver: { cpuCores: number; eventLoopDelayP99Ms: number; eventLoopDelayMaxMs: number };
}

interface SwarmClient extends TallyClient {
  socket: WebSocket | undefined;
  subscribed: boolean;
  /** Closed (or being closed) by the swarm: its close is not a disconnect. */
  ours: boolean;
}

/** Everything one run shares between its clients. */
interface SwarmRun {
  options: SwarmOptions & typeof SWARM_DEFAULTS;
  now: () => number;
  tally: SwarmTally;
  connectLatency: Histogram;
  connectFailures: Record<string, number>;
  disconnects: { total: number; byCode: Record<string, number> };
  clients: SwarmClient[];
  open: number;
  subscribed: number;
  /** The one subscribe message every client sends. */
  subscribe: string;
  pause(ms: number): Promise<void>;
  aborted(): boolean;
}

/**
 * Runs N feed clients: connects them over `rampMs` with at most `maxConnecting` handshakes at once,
 * subscribes each to `channels`, waits `warmupMs`, measures for `durationMs`, then closes them.
 */
export async function runSwarm(options: SwarmOptions): Promise<SwarmResult> {
  const run = createRun(options);
  const o = run.options;
  const startedAt = performance.now();
  let phase: SwarmProgress['phase'] = 'connecting';
  const enter = (next: SwarmProgress['phase']): void => {
    phase = next;
    o.onPhase?.(next);
  };
  const progress = setInterval(() => {
    o.onProgress?.({
      phase,
      elapsedMs: Math.round(performance.now() - startedAt),
      subscribed: run.subscribed,
      connectFailures: sum(run.connectFailures),
      open: run.open,
      updates: run.tally.messages.update,
      disconnects: run.disconnects.total,
    });
  }, o.progressIntervalMs).unref();
  try {
    enter('connecting');
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < o.clients && !run.aborted()) {
        const n = next++;
        await run.pause(startedAt + (o.rampMs * n) / o.clients - performance.now());
        if (!run.aborted()) await connectClient(run, n);
      }
    };
    await Promise.all(Array.from({ length: Math.min(o.maxConnecting, o.clients) }, worker));
    const connectSeconds = (performance.now() - startedAt) / 1000;
    enter('warmup');
    await run.pause(o.warmupMs);
    const measured = await measureWindow(
      run,
      () => enter('measuring'),
      () => enter('closing'),
    );
    await closeAll(run.clients);
    return shapeSwarmResult(run, connectSeconds, measured);
  } finally {
    clearInterval(progress);
    for (const client of run.clients) client.socket?.terminate();
  }
}

function createRun(options: SwarmOptions): SwarmRun {
  const o = { ...SWARM_DEFAULTS, ...options };
  if (!Number.isSafeInteger(o.clients) || o.clients < 1)
    throw new RangeError(`swarm: clients must be a whole number ≥ 1, got ${o.clients}`);
  if (!(o.durationMs >= 0) || !(o.rampMs >= 0) || !(o.warmupMs >= 0))
    throw new RangeError('swarm: durationMs, rampMs and warmupMs must be ≥ 0');
  const aborted = (): boolean => o.signal?.aborted === true;
  return {
    options: o,
    now: anchoredClock(),
    tally: createSwarmTally(o.channels),
    connectLatency: createLatencyHistogram(),
    connectFailures: {},
    disconnects: { total: 0, byCode: {} },
    clients: [],
    open: 0,
    subscribed: 0,
    subscribe: JSON.stringify({
      op: 'subscribe',
      channels: o.channels,
      ...(o.top === undefined ? {} : { top: o.top }),
      id: SUBSCRIBE_ID,
    }),
    aborted,
    // Waits `ms`, less when the signal aborts; the timer never outlives the wait.
    pause: (ms) =>
      new Promise<void>((resolve) => {
        if (ms <= 0 || aborted()) return resolve();
        const done = (): void => {
          clearTimeout(timer);
          o.signal?.removeEventListener('abort', done);
          resolve();
        };
        const timer = setTimeout(done, ms);
        o.signal?.addEventListener('abort', done, { once: true });
      }),
  };
}

/** Connects client `n`; resolves once it is subscribed or has failed (counted by reason). */
async function connectClient(run: SwarmRun, n: number): Promise<void> {
  const o = run.options;
  const client: SwarmClient = {
    seqs: new Map(),
    socket: undefined,
    subscribed: false,
    ours: false,
  };
  run.clients.push(client);
  const begun = performance.now();
  let token: string | undefined;
  try {
    token = typeof o.token === 'function' ? await o.token(n) : o.token;
  } catch {
    // A token that cannot be minted is this client's failure, counted like any other.
    increment(run.connectFailures, 'token');
    return;
  }
  await new Promise<void>((settle) => {
    let settled = false;
    let wasOpen = false;
    const finish = (failure?: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (failure === undefined) {
        client.subscribed = true;
        run.subscribed++;
        run.connectLatency.recordValue(Math.round((performance.now() - begun) * 1000));
      } else {
        increment(run.connectFailures, failure);
        client.ours = true;
        socket.terminate();
      }
      settle();
    };
    const timer = setTimeout(() => finish('timeout'), o.connectTimeoutMs);
    const socket = new WebSocket(
      o.url,
      token === undefined ? [] : [FEED_SUBPROTOCOL, FEED_BEARER_PREFIX + token],
      {
        perMessageDeflate: false,
        // The driver trusts the feed's UTF-8; validating it is work the driver can skip.
        skipUTF8Validation: true,
        handshakeTimeout: o.connectTimeoutMs,
        ...(o.origin === undefined ? {} : { origin: o.origin }),
      },
    );
    client.socket = socket;
    socket.on('open', () => {
      wasOpen = true;
      run.open++;
      socket.send(run.subscribe);
    });
    socket.on('message', (data: Buffer) => {
      const outcome = run.tally.record(client, data, run.now());
      if (outcome !== undefined) finish(outcome === 'subscribed' ? undefined : 'subscribe_error');
    });
    socket.on('error', (error: Error) => finish(classifyConnectError(error)));
    socket.on('close', (code: number) => {
      if (wasOpen) run.open--;
      if (!settled) return finish(`close_${code}`);
      if (client.ours || !client.subscribed) return;
      run.disconnects.total++;
      increment(run.disconnects.byCode, String(code));
    });
  });
}

interface Measured {
  seconds: number;
  cpuSeconds: number;
  eventLoop: ReturnType<typeof monitorEventLoopDelay>;
}

/** The measured window: latency is recorded only inside it. */
async function measureWindow(
  run: SwarmRun,
  opened: () => void,
  closed: () => void,
): Promise<Measured> {
  const eventLoop = monitorEventLoopDelay({ resolution: 10 });
  eventLoop.enable();
  const cpuBefore = process.cpuUsage();
  const start = performance.now();
  run.tally.measuring = true;
  opened();
  await run.pause(run.options.durationMs);
  run.tally.measuring = false;
  const seconds = (performance.now() - start) / 1000;
  closed();
  const cpu = process.cpuUsage(cpuBefore);
  eventLoop.disable();
  return { seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, eventLoop };
}

/** The plain-JSON result of a run. */
function shapeSwarmResult(run: SwarmRun, connectSeconds: number, m: Measured): SwarmResult {
  const { options: o, tally } = run;
  return {
    url: o.url,
    clients: o.clients,
    channels: [...o.channels],
    top: o.top ?? null,
    subscribed: run.subscribed,
    connectFailures: { ...run.connectFailures },
    connectMs: summarizeLatency(run.connectLatency),
    connectSeconds: round3(connectSeconds),
    window: {
      seconds: round3(m.seconds),
      updates: tally.window.updates,
      snapshots: tally.window.snapshots,
      updatesPerSecondPerClient: perClientRate(tally.window.updates, m.seconds, run.subscribed),
    },
    latencyMs: summarizeLatency(tally.latency),
    negativeLatencies: tally.negativeLatencies,
    messages: { ...tally.messages },
    updatesByChannel: { ...tally.updatesByChannel },
    gaps: { ...tally.gaps, byChannel: { ...tally.gaps.byChannel } },
    errors: { ...tally.errors },
    disconnects: { total: run.disconnects.total, byCode: { ...run.disconnects.byCode } },
    driver: {
      cpuCores: m.seconds === 0 ? 0 : round3(m.cpuSeconds / m.seconds),
      // No sample (an aborted, empty window) reads as NaN: report 0.
      eventLoopDelayP99Ms: round3((m.eventLoop.percentile(99) || 0) / 1e6),
      eventLoopDelayMaxMs: round3((m.eventLoop.max || 0) / 1e6),
    },
  };
}

/** Messages per second per client, rounded to 3 decimals; 0 without clients or time. */
export function perClientRate(messages: number, seconds: number, clients: number): number {
  return clients === 0 || seconds <= 0 ? 0 : round3(messages / seconds / clients);
}

/** Closes every client (1000), waits up to 5 s for the closing handshakes, then cuts the rest. */
async function closeAll(clients: readonly SwarmClient[]): Promise<void> {
  const closing: Promise<void>[] = [];
  for (const client of clients) {
    const socket = client.socket;
    client.ours = true;
    if (socket === undefined || socket.readyState === WebSocket.CLOSED) continue;
    closing.push(new Promise((resolve) => socket.once('close', () => resolve())));
    if (socket.readyState === WebSocket.OPEN) socket.close(1000, 'swarm done');
    else socket.terminate();
  }
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => (timer = setTimeout(resolve, 5000)));
  await Promise.race([Promise.all(closing), deadline]);
  clearTimeout(timer);
}

/**
 * Epoch ms with sub-ms resolution: the monotonic clock anchored to the wall clock at a tick of
 * `Date.now()`, so it agrees with the server's `Date.now()` (same machine) to a few µs. The
 * server's `ts` is whole ms, so measured latencies read 0–1 ms high (0.5 ms on average).
 */
function anchoredClock(): () => number {
  const first = Date.now();
  let wall = first;
  while (wall === first) wall = Date.now();
  const offset = wall - performance.now();
  return () => offset + performance.now();
}

const increment = (counts: Record<string, number>, key: string): void => {
  counts[key] = (counts[key] ?? 0) + 1;
};
const sum = (counts: Record<string, number>): number =>
  Object.values(counts).reduce((a, b) => a + b, 0);
const round3 = (n: number): number => Math.round(n * 1000) / 1000;
