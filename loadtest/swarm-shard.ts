import type { Histogram } from 'hdr-histogram-js';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { WebSocket } from 'ws';
import { FEED_BEARER_PREFIX, FEED_SUBPROTOCOL } from '../core/index.ts';
import type { SwarmProgress, SwarmResult } from './swarm.ts';
import {
  SUBSCRIBE_ID,
  classifyConnectError,
  createLatencyHistogram,
  createSwarmTally,
  type SwarmTally,
  type TallyClient,
} from './swarm-tally.ts';

/** What one shard runs: its share (every `shards`-th client from `shard`) of a swarm's clients. */
export interface SwarmShardConfig {
  url: string;
  /** Clients of the whole swarm: client `n` starts at `rampMs * n / clients`. */
  clients: number;
  shard: number;
  shards: number;
  channels: readonly string[];
  top?: number | undefined;
  rampMs: number;
  /** Handshakes in flight at once in this shard. */
  maxConnecting: number;
  connectTimeoutMs: number;
  /** Bearer token for every client, or a function minting client `n`'s; none: no auth offered. */
  token?: string | ((n: number) => Promise<string>) | undefined;
  origin?: string | undefined;
}

/**
 * A shard's counters for progress lines: the swarm's progress without its phase and clock
 * (across shards the counts add up, and the recent latency p99 is the worst shard's).
 */
export type SwarmShardProgress = Omit<SwarmProgress, 'phase' | 'elapsedMs'>;

/** What one shard measured; the shards' parts add up to the swarm's result. */
export interface SwarmPart extends Pick<
  SwarmResult,
  | 'subscribed'
  | 'connectFailures'
  | 'negativeLatencies'
  | 'messages'
  | 'updatesByChannel'
  | 'gaps'
  | 'errors'
  | 'disconnects'
> {
  /** Time from a client's start to its subscribe ack, µs. */
  connectLatency: Histogram;
  /** Delivery latency of updates inside the window, µs. */
  latency: Histogram;
  window: { updates: number; snapshots: number };
  /** This shard's event loop over the window, ms. */
  eventLoop: { p99Ms: number; maxMs: number };
}

/** Runs one shard's clients; the caller (a worker, or runSwarm in-thread) says when each phase begins. */
export interface SwarmShard {
  /** Connects and subscribes every client of the shard; resolves once each has settled. */
  connect(): Promise<void>;
  /** Latency is recorded from now on. */
  openWindow(): void;
  closeWindow(): void;
  /** Closes every client (after the window), and resolves with what the shard measured. */
  finish(): Promise<SwarmPart>;
  /** Cuts every connection at once (a failure path; idempotent). */
  terminate(): void;
  progress(): SwarmShardProgress;
}

interface SwarmClient extends TallyClient {
  socket: WebSocket | undefined;
  subscribed: boolean;
  /** Closed (or being closed) by the swarm: its close is not a disconnect. */
  ours: boolean;
}

interface ShardState {
  config: SwarmShardConfig;
  signal: AbortSignal | undefined;
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
}

/** Creates a shard; `signal` ends its ramp early. */
export function createSwarmShard(config: SwarmShardConfig, signal?: AbortSignal): SwarmShard {
  const state: ShardState = {
    config,
    signal,
    now: anchoredClock(),
    tally: createSwarmTally(config.channels),
    connectLatency: createLatencyHistogram(),
    connectFailures: {},
    disconnects: { total: 0, byCode: {} },
    clients: [],
    open: 0,
    subscribed: 0,
    subscribe: JSON.stringify({
      op: 'subscribe',
      channels: config.channels,
      ...(config.top === undefined ? {} : { top: config.top }),
      id: SUBSCRIBE_ID,
    }),
  };
  const eventLoop = monitorEventLoopDelay({ resolution: 10 });
  const aborted = (): boolean => signal?.aborted === true;
  const terminate = (): void => {
    for (const client of state.clients) client.socket?.terminate();
  };
  return {
    async connect() {
      const startedAt = performance.now();
      let next = config.shard;
      const connector = async (): Promise<void> => {
        while (next < config.clients && !aborted()) {
          const n = next;
          next += config.shards;
          await pause(startedAt + (config.rampMs * n) / config.clients - performance.now(), signal);
          if (!aborted()) await connectClient(state, n);
        }
      };
      const own = Math.ceil((config.clients - config.shard) / config.shards);
      await Promise.all(Array.from({ length: Math.min(config.maxConnecting, own) }, connector));
    },
    openWindow() {
      eventLoop.enable();
      state.tally.measuring = true;
    },
    closeWindow() {
      state.tally.measuring = false;
      eventLoop.disable();
    },
    async finish() {
      await closeAll(state.clients);
      terminate();
      return shapePart(state, eventLoop);
    },
    terminate,
    progress: () => ({
      subscribed: state.subscribed,
      connectFailures: sum(state.connectFailures),
      open: state.open,
      updates: state.tally.messages.update,
      disconnects: state.disconnects.total,
      recentLatencyP99Ms: state.tally.takeRecent().p99,
    }),
  };
}

function shapePart(
  state: ShardState,
  eventLoop: ReturnType<typeof monitorEventLoopDelay>,
): SwarmPart {
  const { tally } = state;
  return {
    subscribed: state.subscribed,
    connectFailures: { ...state.connectFailures },
    connectLatency: state.connectLatency,
    latency: tally.latency,
    window: { ...tally.window },
    negativeLatencies: tally.negativeLatencies,
    messages: { ...tally.messages },
    updatesByChannel: { ...tally.updatesByChannel },
    gaps: { ...tally.gaps, byChannel: { ...tally.gaps.byChannel } },
    errors: { ...tally.errors },
    disconnects: { total: state.disconnects.total, byCode: { ...state.disconnects.byCode } },
    // No sample (an aborted, empty window) reads as NaN: report 0.
    eventLoop: {
      p99Ms: (eventLoop.percentile(99) || 0) / 1e6,
      maxMs: (eventLoop.max || 0) / 1e6,
    },
  };
}

/** Connects client `n`; resolves once it is subscribed or has failed (counted by reason). */
async function connectClient(run: ShardState, n: number): Promise<void> {
  const o = run.config;
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

/** Waits `ms`, less when `signal` aborts; the timer never outlives the wait. */
export function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve) => {
    if (ms <= 0 || signal?.aborted === true) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
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
