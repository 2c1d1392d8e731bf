import { decodeFromCompressedBase64 } from 'hdr-histogram-js';
import { Worker } from 'node:worker_threads';
import {
  createSwarmShard,
  type SwarmPart,
  type SwarmShardConfig,
  type SwarmShardProgress,
} from './swarm-shard.ts';

/** A swarm's shards, on this thread or on worker threads: runSwarm drives both alike. */
export interface SwarmShards {
  /** Resolves once every shard has connected (or failed) all its clients. */
  connect(): Promise<void>;
  openWindow(): void;
  closeWindow(): void;
  /** Closes every client; resolves with each shard's part. */
  finish(): Promise<SwarmPart[]>;
  /** Sums over the shards (a worker's as of its last report). */
  progress(): SwarmShardProgress;
  /** Cuts every connection and stops the workers; idempotent. */
  terminate(): Promise<void>;
}

/** The swarm's clients, for {@link createSwarmShards} to split. */
export type SwarmShardsConfig = Omit<SwarmShardConfig, 'shard' | 'shards'>;

/** What a shard worker starts with (`workerData`). */
export interface ShardWorkerData {
  config: Omit<SwarmShardConfig, 'token'> & { token?: string | undefined };
  /** Ask the parent for each client's token. */
  tokenPerClient: boolean;
  progressIntervalMs: number;
}

/** A part as it crosses threads: histograms as compressed base64. */
export type SwarmPartWire = Omit<SwarmPart, 'connectLatency' | 'latency'> & {
  connectLatency: string;
  latency: string;
};

/** Parent to shard worker. */
export type ToShard =
  { type: 'token'; n: number; token?: string } | { type: 'abort' | 'open' | 'close' | 'finish' };

/** Shard worker to parent. */
export type FromShard =
  | { type: 'token'; n: number }
  | { type: 'progress' | 'connected'; progress: SwarmShardProgress }
  | { type: 'part'; part: SwarmPartWire };

/**
 * Runs the clients in `shards` shards: one on this thread, or that many worker threads (client n
 * in shard n mod shards, each shard with its share of `maxConnecting`). `signal` ends the ramp.
 */
export function createSwarmShards(
  config: SwarmShardsConfig,
  shards: number,
  progressIntervalMs: number,
  signal?: AbortSignal,
): SwarmShards {
  if (shards <= 1) {
    const shard = createSwarmShard({ ...config, shard: 0, shards: 1 }, signal);
    return {
      connect: () => shard.connect(),
      openWindow: () => shard.openWindow(),
      closeWindow: () => shard.closeWindow(),
      finish: async () => [await shard.finish()],
      progress: () => shard.progress(),
      terminate: () => {
        shard.terminate();
        return Promise.resolve();
      },
    };
  }
  const members = Array.from({ length: shards }, (_, shard) =>
    startMember(config, shard, shards, progressIntervalMs),
  );
  const broadcast = (message: ToShard): void => {
    for (const m of members) m.worker.postMessage(message);
  };
  const onAbort = (): void => broadcast({ type: 'abort' });
  if (signal?.aborted === true) onAbort();
  else signal?.addEventListener('abort', onAbort, { once: true });
  return {
    async connect() {
      await Promise.all(members.map((m) => m.connected));
    },
    openWindow: () => broadcast({ type: 'open' }),
    closeWindow: () => broadcast({ type: 'close' }),
    finish() {
      broadcast({ type: 'finish' });
      return Promise.all(members.map((m) => m.part));
    },
    progress() {
      const total = { subscribed: 0, connectFailures: 0, open: 0, updates: 0, disconnects: 0 };
      let recentLatencyP99Ms: number | null = null;
      for (const m of members) {
        for (const key of Object.keys(total) as (keyof typeof total)[])
          total[key] += m.progress[key];
        const p99 = m.progress.recentLatencyP99Ms;
        if (p99 !== null) recentLatencyP99Ms = Math.max(recentLatencyP99Ms ?? 0, p99);
      }
      return { ...total, recentLatencyP99Ms };
    },
    async terminate() {
      signal?.removeEventListener('abort', onAbort);
      await Promise.all(members.map((m) => m.worker.terminate()));
    },
  };
}

interface Member {
  worker: Worker;
  progress: SwarmShardProgress;
  connected: Promise<void>;
  part: Promise<SwarmPart>;
}

function startMember(
  config: SwarmShardsConfig,
  shard: number,
  shards: number,
  progressIntervalMs: number,
): Member {
  const { token } = config;
  const data: ShardWorkerData = {
    config: {
      ...config,
      token: typeof token === 'string' ? token : undefined,
      shard,
      shards,
      maxConnecting: Math.ceil(config.maxConnecting / shards),
    },
    tokenPerClient: typeof token === 'function',
    progressIntervalMs,
  };
  const worker = new Worker(new URL('./swarm-worker.ts', import.meta.url), { workerData: data });
  let connected!: () => void;
  let delivered!: (part: SwarmPart) => void;
  let failed!: (error: Error) => void;
  const member: Member = {
    worker,
    progress: {
      subscribed: 0,
      connectFailures: 0,
      open: 0,
      updates: 0,
      disconnects: 0,
      recentLatencyP99Ms: null,
    },
    connected: new Promise<void>((resolve) => (connected = resolve)),
    part: new Promise<SwarmPart>((resolve, reject) => {
      delivered = resolve;
      failed = reject;
    }),
  };
  // A shard that dies fails the run: its clients' figures are gone.
  member.connected = Promise.race([member.connected, member.part.then(() => undefined)]);
  // Either may never be awaited (a run that failed elsewhere); the awaited one still rejects.
  member.connected.catch(() => undefined);
  member.part.catch(() => undefined);
  worker.on('message', (message: FromShard) => {
    switch (message.type) {
      case 'token':
        void mint(token, message.n).then((minted) =>
          worker.postMessage({
            type: 'token',
            n: message.n,
            ...(minted === undefined ? {} : { token: minted }),
          } satisfies ToShard),
        );
        return;
      case 'progress':
        member.progress = message.progress;
        return;
      case 'connected':
        member.progress = message.progress;
        connected();
        return;
      case 'part':
        delivered({
          ...message.part,
          connectLatency: decodeFromCompressedBase64(message.part.connectLatency),
          latency: decodeFromCompressedBase64(message.part.latency),
        });
        return;
    }
  });
  worker.on('error', (error: Error) =>
    failed(new Error(`swarm shard ${shard} failed`, { cause: error })),
  );
  worker.on('exit', (code) => failed(new Error(`swarm shard ${shard} exited (${code})`)));
  return member;
}

/** Client n's token; undefined when minting fails (the shard counts it as that client's failure). */
async function mint(token: SwarmShardsConfig['token'], n: number): Promise<string | undefined> {
  try {
    return typeof token === 'function' ? await token(n) : token;
  } catch {
    // The failure is counted by the shard, as `token`.
    return undefined;
  }
}
