import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { DecodeCounts, EncodedBatch, EventType, RecordedFrame } from '../core/index.ts';

/** A chunk of frames for a worker: their bytes back to back, and where each ends. */
export interface EncodeRequest {
  id: number;
  data: ArrayBuffer;
  ends: number[];
  receivedAtMs: number;
}

/** The message a worker posts once it can take requests. */
export const WORKER_READY = 'ready';

/** How long a worker may take to load before the pool gives up on starting. */
const WORKER_START_TIMEOUT_MS = 30_000;

/** A worker's answer: encoded batches back to back, and the decode issues it counted. */
export interface EncodeResult {
  id: number;
  data: ArrayBuffer;
  batches: { type: EventType; count: number; end: number }[];
  issues: Partial<Record<string, number>>;
}

/** Worker threads that decode recorded frames and encode them as batches, off the main thread. */
export interface EncodePool {
  /**
   * Decodes and encodes a chunk of frames; resolves with its batches. If a worker dies, its chunks
   * resolve to `undefined` (the caller still holds the frames) and the pool carries on without it.
   */
  encode(
    frames: readonly RecordedFrame[],
    receivedAtMs: number,
  ): Promise<EncodedBatch[] | undefined>;
  /** Workers still alive. */
  readonly size: number;
  close(): Promise<void>;
}

interface Member {
  worker: Worker;
  pending: Map<number, (result: EncodeResult | undefined) => void>;
}

/**
 * Starts `size` encode workers. Decode issues they find are added to `counts`. Chunks go to the
 * worker with the fewest outstanding, so a slow worker does not hold back the others.
 */
export async function createEncodePool(options: {
  size: number;
  batchMaxEvents: number;
  counts: DecodeCounts;
  log: Logger;
}): Promise<EncodePool> {
  const members: Member[] = [];
  let nextId = 0;
  const retire = (member: Member, error: unknown): void => {
    const index = members.indexOf(member);
    if (index < 0) return;
    members.splice(index, 1);
    options.log.error({ err: error }, 'encode worker failed; its chunks are encoded in-thread');
    for (const resolve of member.pending.values()) resolve(undefined);
    member.pending.clear();
  };
  const start = (): Promise<Member> =>
    new Promise((resolve, reject) => {
      const worker = new Worker(new URL('./encode-worker.ts', import.meta.url), {
        workerData: { batchMaxEvents: options.batchMaxEvents },
      });
      const member: Member = { worker, pending: new Map() };
      const deadline = setTimeout(() => {
        reject(new Error(`encode worker not ready within ${WORKER_START_TIMEOUT_MS} ms`));
        void worker.terminate();
      }, WORKER_START_TIMEOUT_MS);
      worker.on('message', (result: EncodeResult | typeof WORKER_READY) => {
        // Ready once its modules are loaded (half a second through core/index.ts, ~0.1 s now),
        // not at 'online': a replay's clock must not start while its workers still load.
        if (result === WORKER_READY) {
          clearTimeout(deadline);
          return resolve(member);
        }
        for (const [reason, n] of Object.entries(result.issues))
          options.counts[reason as keyof DecodeCounts] += n ?? 0;
        const done = member.pending.get(result.id);
        member.pending.delete(result.id);
        done?.(result);
      });
      worker.on('error', (error: Error) => {
        clearTimeout(deadline);
        reject(error);
        retire(member, error);
      });
      worker.on('exit', (code) => {
        const error = new Error(`encode worker exited (${code})`);
        clearTimeout(deadline);
        reject(error);
        retire(member, error);
      });
    });
  const starts = await Promise.allSettled(Array.from({ length: options.size }, start));
  const failed = starts.find((r) => r.status === 'rejected');
  for (const r of starts) if (r.status === 'fulfilled') members.push(r.value);
  if (failed !== undefined) {
    // No half-started pool: stop the workers that did start.
    await Promise.all(members.splice(0).map((m) => m.worker.terminate()));
    throw failed.reason;
  }

  return {
    get size() {
      return members.length;
    },
    async encode(frames, receivedAtMs) {
      const member = members.reduce<Member | undefined>(
        (best, m) => (best === undefined || m.pending.size < best.pending.size ? m : best),
        undefined,
      );
      if (member === undefined) return undefined;
      const ends: number[] = [];
      let size = 0;
      for (const frame of frames) ends.push((size += frame.data.length));
      // A fresh buffer of its own (never the shared pool), so it can be transferred, not copied.
      const data = new Uint8Array(size);
      let offset = 0;
      for (const frame of frames) {
        data.set(frame.data, offset);
        offset += frame.data.length;
      }
      const id = ++nextId;
      const result = await new Promise<EncodeResult | undefined>((resolve) => {
        member.pending.set(id, resolve);
        const request: EncodeRequest = { id, data: data.buffer, ends, receivedAtMs };
        member.worker.postMessage(request, [data.buffer]);
      });
      if (result === undefined) return undefined;
      let start = 0;
      return result.batches.map(({ type, count, end }) => {
        const body = Buffer.from(result.data, start, end - start);
        start = end;
        return { type, count, body };
      });
    },
    async close() {
      const all = members.splice(0);
      // Chunks still out resolve to undefined: their callers encode them in-thread.
      for (const m of all) for (const done of m.pending.values()) done(undefined);
      await Promise.all(all.map((m) => m.worker.terminate()));
    },
  };
}
