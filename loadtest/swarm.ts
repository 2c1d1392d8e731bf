import { createSwarmShards } from './swarm-pool.ts';
import { pause, type SwarmPart } from './swarm-shard.ts';
import {
  createLatencyHistogram,
  summarizeLatency,
  type GapCounts,
  type LatencySummary,
  type MessageCounts,
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
  /**
   * Worker threads the clients are spread over (client n in shard n mod shards); 1 runs them on
   * this thread. One thread parsing every client's frames queues a large swarm's messages behind
   * each other, which reads as the feed's latency. @default 1
   */
  shards?: number;
}

/** Defaults of {@link SwarmOptions}. */
export const SWARM_DEFAULTS: Required<
  Pick<
    SwarmOptions,
    'rampMs' | 'warmupMs' | 'maxConnecting' | 'connectTimeoutMs' | 'progressIntervalMs' | 'shards'
  >
> = {
  rampMs: 0,
  warmupMs: 1000,
  maxConnecting: 64,
  connectTimeoutMs: 10_000,
  progressIntervalMs: 1000,
  shards: 1,
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
  /** Delivery latency p99 (ms) since the last progress while measuring; null without updates. */
  recentLatencyP99Ms: number | null;
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
  /**
   * The load driver itself over the window: CPU cores used (the whole process) and the event-loop
   * delay of its busiest shard.
   */
  driver: {
    cpuCores: number;
    eventLoopDelayP99Ms: number;
    eventLoopDelayMaxMs: number;
    shards: number;
  };
}

type ResolvedOptions = SwarmOptions & typeof SWARM_DEFAULTS;

/**
 * Runs N feed clients: connects them over `rampMs` with at most `maxConnecting` handshakes at once,
 * subscribes each to `channels`, waits `warmupMs`, measures for `durationMs`, then closes them.
 * With `shards` > 1 the clients run on that many worker threads and their figures are merged.
 */
export async function runSwarm(options: SwarmOptions): Promise<SwarmResult> {
  const o = resolveOptions(options);
  const shards = createSwarmShards(
    {
      url: o.url,
      clients: o.clients,
      channels: o.channels,
      top: o.top,
      rampMs: o.rampMs,
      maxConnecting: o.maxConnecting,
      connectTimeoutMs: o.connectTimeoutMs,
      token: o.token,
      origin: o.origin,
    },
    Math.min(o.shards, o.clients),
    o.progressIntervalMs,
    o.signal,
  );
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
      ...shards.progress(),
    });
  }, o.progressIntervalMs).unref();
  try {
    enter('connecting');
    await shards.connect();
    const connectSeconds = (performance.now() - startedAt) / 1000;
    enter('warmup');
    await pause(o.warmupMs, o.signal);
    const cpuBefore = process.cpuUsage();
    const start = performance.now();
    shards.openWindow();
    enter('measuring');
    await pause(o.durationMs, o.signal);
    shards.closeWindow();
    const seconds = (performance.now() - start) / 1000;
    enter('closing');
    const cpu = process.cpuUsage(cpuBefore);
    const parts = await shards.finish();
    return shapeSwarmResult(o, connectSeconds, seconds, (cpu.user + cpu.system) / 1e6, parts);
  } finally {
    clearInterval(progress);
    await shards.terminate();
  }
}

function resolveOptions(options: SwarmOptions): ResolvedOptions {
  const o = { ...SWARM_DEFAULTS, ...options };
  if (!Number.isSafeInteger(o.clients) || o.clients < 1)
    throw new RangeError(`swarm: clients must be a whole number ≥ 1, got ${o.clients}`);
  if (!Number.isSafeInteger(o.shards) || o.shards < 1)
    throw new RangeError(`swarm: shards must be a whole number ≥ 1, got ${o.shards}`);
  if (!(o.durationMs >= 0) || !(o.rampMs >= 0) || !(o.warmupMs >= 0))
    throw new RangeError('swarm: durationMs, rampMs and warmupMs must be ≥ 0');
  return o;
}

/** The shards' parts added up: counters summed, histograms merged, the worst event loop. */
export function mergeSwarmParts(parts: readonly SwarmPart[]): SwarmPart {
  const total: SwarmPart = {
    subscribed: 0,
    connectFailures: {},
    connectLatency: createLatencyHistogram(),
    latency: createLatencyHistogram(),
    window: { updates: 0, snapshots: 0 },
    negativeLatencies: 0,
    messages: { snapshot: 0, update: 0, ack: 0, error: 0, heartbeat: 0, other: 0, unparsable: 0 },
    updatesByChannel: {},
    gaps: { total: 0, missed: 0, outOfOrder: 0, byChannel: {} },
    errors: {},
    disconnects: { total: 0, byCode: {} },
    eventLoop: { p99Ms: 0, maxMs: 0 },
  };
  for (const part of parts) {
    total.subscribed += part.subscribed;
    addCounts(total.connectFailures, part.connectFailures);
    total.connectLatency.add(part.connectLatency);
    total.latency.add(part.latency);
    total.window.updates += part.window.updates;
    total.window.snapshots += part.window.snapshots;
    total.negativeLatencies += part.negativeLatencies;
    addCounts(total.messages, part.messages);
    addCounts(total.updatesByChannel, part.updatesByChannel);
    total.gaps.total += part.gaps.total;
    total.gaps.missed += part.gaps.missed;
    total.gaps.outOfOrder += part.gaps.outOfOrder;
    addCounts(total.gaps.byChannel, part.gaps.byChannel);
    addCounts(total.errors, part.errors);
    total.disconnects.total += part.disconnects.total;
    addCounts(total.disconnects.byCode, part.disconnects.byCode);
    total.eventLoop.p99Ms = Math.max(total.eventLoop.p99Ms, part.eventLoop.p99Ms);
    total.eventLoop.maxMs = Math.max(total.eventLoop.maxMs, part.eventLoop.maxMs);
  }
  return total;
}

/** The plain-JSON result of a run. */
function shapeSwarmResult(
  o: ResolvedOptions,
  connectSeconds: number,
  seconds: number,
  cpuSeconds: number,
  parts: readonly SwarmPart[],
): SwarmResult {
  const all = mergeSwarmParts(parts);
  return {
    url: o.url,
    clients: o.clients,
    channels: [...o.channels],
    top: o.top ?? null,
    subscribed: all.subscribed,
    connectFailures: all.connectFailures,
    connectMs: summarizeLatency(all.connectLatency),
    connectSeconds: round3(connectSeconds),
    window: {
      seconds: round3(seconds),
      updates: all.window.updates,
      snapshots: all.window.snapshots,
      updatesPerSecondPerClient: perClientRate(all.window.updates, seconds, all.subscribed),
    },
    latencyMs: summarizeLatency(all.latency),
    negativeLatencies: all.negativeLatencies,
    messages: all.messages,
    updatesByChannel: all.updatesByChannel,
    gaps: all.gaps,
    errors: all.errors,
    disconnects: all.disconnects,
    driver: {
      cpuCores: seconds === 0 ? 0 : round3(cpuSeconds / seconds),
      eventLoopDelayP99Ms: round3(all.eventLoop.p99Ms),
      eventLoopDelayMaxMs: round3(all.eventLoop.maxMs),
      shards: parts.length,
    },
  };
}

/** Messages per second per client, rounded to 3 decimals; 0 without clients or time. */
export function perClientRate(messages: number, seconds: number, clients: number): number {
  return clients === 0 || seconds <= 0 ? 0 : round3(messages / seconds / clients);
}

function addCounts<K extends string>(into: Record<K, number>, from: Record<K, number>): void {
  for (const key of Object.keys(from) as K[]) into[key] = (into[key] ?? 0) + from[key];
}

const round3 = (n: number): number => Math.round(n * 1000) / 1000;
