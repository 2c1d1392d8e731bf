/** Writes recordings (format in core/recording.ts): buffered, sequential, errors never lost. */
import { open, type FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import { ConfigError } from './errors.ts';
import {
  LAYOUT,
  RECORDING_FORMAT,
  encodeIndex,
  encodeRecord,
  indexFrame,
  type RecordedFrame,
  type RecordingHeader,
  type RecordingIndexEntry,
  type RecordingMeta,
  type RecordingTotals,
} from './recording.ts';

const { head: HEAD, frameHead: FRAME_HEAD } = LAYOUT;

/** Options of {@link createRecordingWriter}. */
export interface RecordingWriterOptions {
  /** Where the frames come from, stored in the header (default ''). */
  source?: string;
  /** Stored in the header (default `openbell`). */
  createdBy?: string;
  /** Size of the chunks written at once (default 1 MiB). */
  flushBytes?: number;
  /** Longest time a written frame waits in memory before it is written (default 200 ms). */
  flushIntervalMs?: number;
  /** `write` returns false while more than this waits for the disk (default 16 MiB). */
  highWaterBytes?: number;
  /** Replace an existing file instead of refusing to. */
  overwrite?: boolean;
}

/**
 * Appends frames to a new recording. The first error of the disk is kept and rethrown by every
 * later call (`write`, `drain`, `flush`, `close`): what could not be written is never a silent gap.
 */
export interface RecordingWriter {
  /**
   * Appends a frame to memory (synchronously). Throws on a receive time before the previous one.
   * Returns false when more than `highWaterBytes` wait for the disk: `await drain()` then.
   */
  write(frame: RecordedFrame): boolean;
  /** Waits until the full chunks are written. */
  drain(): Promise<void>;
  /** Writes everything buffered to the file (without fsync). */
  flush(): Promise<void>;
  /** Writes the index and the trailer, fsyncs and closes. */
  close(): Promise<RecordingTotals>;
  /** Stops and closes without an index: the file then reads back like a crashed one. */
  abort(): Promise<void>;
  /** Frames, events and raw frame bytes written so far. */
  readonly frames: number;
  readonly events: number;
  readonly bytes: number;
}

function checkMeta(meta: RecordingMeta): void {
  if (typeof meta !== 'object' || meta === null || Array.isArray(meta)) {
    throw new ConfigError('meta', 'must be an object');
  }
  if (meta.date !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(String(meta.date))) {
    throw new ConfigError('meta.date', `must be YYYY-MM-DD, got ${JSON.stringify(meta.date)}`);
  }
  const prevClose: unknown = meta.prevClose ?? {};
  if (typeof prevClose !== 'object' || prevClose === null || Array.isArray(prevClose)) {
    throw new ConfigError('meta.prevClose', 'must be an object of symbol → close');
  }
  for (const [sym, close] of Object.entries(prevClose)) {
    if (typeof close !== 'number' || !Number.isFinite(close)) {
      throw new ConfigError(`meta.prevClose.${sym}`, `must be a finite number, got ${close}`);
    }
  }
}

function positive(field: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new ConfigError(field, `must be a positive integer, got ${value}`);
  }
  return value;
}

function checkFrame(path: string, frame: RecordedFrame, lastUs: number): void {
  const { timeUs, data, events, types } = frame;
  const fail = (message: string) => new RangeError(`recording ${path}: ${message}`);
  if (!Number.isSafeInteger(timeUs) || timeUs < 0) {
    throw fail(`timeUs must be a non-negative integer, got ${timeUs}`);
  }
  if (timeUs < lastUs) {
    throw fail(`receive time ${timeUs} µs is before the previous frame's ${lastUs} µs`);
  }
  if (!(data instanceof Uint8Array)) throw fail('data must be a Buffer');
  if (data.length + FRAME_HEAD > LAYOUT.maxRecord)
    throw fail(`frame of ${data.length} B too large`);
  if (!Number.isInteger(events) || events < 0 || events > 0xffffffff) {
    throw fail(`events must be a u32, got ${events}`);
  }
  if (!Number.isInteger(types) || types < 0 || types > 0xff) {
    throw fail(`types must be a u8 mask, got ${types}`);
  }
}

/**
 * Creates the recording `path` (refusing to overwrite it unless `options.overwrite`) and writes
 * its header. Identical inputs give identical bytes: the header holds no creation time.
 */
export async function createRecordingWriter(
  path: string,
  meta: RecordingMeta,
  options: RecordingWriterOptions = {},
): Promise<RecordingWriter> {
  checkMeta(meta);
  const flushBytes = positive('flushBytes', options.flushBytes, LAYOUT.block);
  const intervalMs = positive('flushIntervalMs', options.flushIntervalMs, 200);
  const highWater = positive('highWaterBytes', options.highWaterBytes, 16 * LAYOUT.block);
  const header: RecordingHeader = {
    format: RECORDING_FORMAT,
    meta,
    source: options.source ?? '',
    createdBy: options.createdBy ?? 'openbell',
  };
  const headerRecord = encodeRecord(LAYOUT.kindHeader, Buffer.from(JSON.stringify(header)));
  const start = Buffer.concat([LAYOUT.magic, headerRecord]);
  let fh: FileHandle;
  try {
    fh = await open(path, options.overwrite === true ? 'w' : 'wx');
  } catch (cause) {
    const exists = (cause as { code?: unknown }).code === 'EEXIST';
    const reason = exists ? 'already exists (pass overwrite to replace it)' : String(cause);
    throw new Error(`recording ${path}: ${reason}`, { cause });
  }
  const pending: Buffer[] = [start];
  const entries: RecordingIndexEntry[] = [];
  const totals: RecordingTotals = {
    frames: 0,
    events: 0,
    bytes: 0,
    firstUs: undefined,
    lastUs: undefined,
  };
  let offset = start.length;
  let pendingBytes = start.length;
  let chunk: Buffer | undefined;
  let used = 0;
  let timer: NodeJS.Timeout | undefined;
  let flushing: Promise<void> | undefined;
  let error: Error | undefined;
  let closed = false;

  // One loop writes the sealed chunks in order; the first failure stops it for good.
  const run = async (): Promise<void> => {
    try {
      for (let next = pending[0]; next !== undefined; next = pending[0]) {
        for (let done = 0; done < next.length;) {
          done += (await fh.write(next, done, next.length - done)).bytesWritten;
        }
        pending.shift();
        pendingBytes -= next.length;
      }
    } catch (cause) {
      error ??= new Error(`recording ${path}: write failed: ${String(cause)}`, { cause });
      pending.length = 0;
    } finally {
      flushing = undefined;
    }
  };
  const seal = (): void => {
    clearTimeout(timer);
    timer = undefined;
    if (chunk !== undefined && used > 0) {
      pending.push(chunk.subarray(0, used));
      pendingBytes += used;
      chunk = undefined;
      used = 0;
    }
    if (pending.length > 0 && flushing === undefined && error === undefined) flushing = run();
  };
  const drain = async (): Promise<void> => {
    while (flushing !== undefined) await flushing;
    if (error !== undefined) throw error;
  };
  const usable = (): void => {
    if (error !== undefined) throw error;
    if (closed) throw new Error(`recording ${path}: the writer is closed`);
  };
  seal();

  return {
    write(frame) {
      usable();
      checkFrame(path, frame, totals.lastUs ?? 0);
      const { timeUs, data, events, types } = frame;
      const size = HEAD + FRAME_HEAD + data.length;
      if (chunk !== undefined && used + size > chunk.length) seal();
      chunk ??= Buffer.allocUnsafe(Math.max(flushBytes, size));
      indexFrame(entries, totals, timeUs, offset);
      const p = used;
      chunk.writeUInt32LE(FRAME_HEAD + data.length, p);
      chunk[p + 8] = LAYOUT.kindFrame;
      chunk.writeDoubleLE(timeUs, p + 9);
      chunk.writeUInt32LE(events, p + 17);
      chunk[p + 21] = types;
      chunk.set(data, p + HEAD + FRAME_HEAD);
      chunk.writeUInt32LE(crc32(chunk.subarray(p + 8, p + size)), p + 4);
      used += size;
      offset += size;
      totals.frames += 1;
      totals.events += events;
      totals.bytes += data.length;
      totals.firstUs ??= timeUs;
      totals.lastUs = timeUs;
      timer ??= setTimeout(seal, intervalMs).unref();
      return pendingBytes <= highWater;
    },
    drain,
    async flush() {
      usable();
      seal();
      await drain();
    },
    async close() {
      if (closed) throw new Error(`recording ${path}: the writer is closed`);
      closed = true;
      try {
        if (error !== undefined) throw error;
        seal();
        await drain();
        const trailer = Buffer.alloc(LAYOUT.trailer);
        LAYOUT.trailerMagic.copy(trailer);
        trailer.writeBigUInt64LE(BigInt(offset), 8);
        pending.push(encodeRecord(LAYOUT.kindIndex, encodeIndex(totals, entries)), trailer);
        seal();
        await drain();
        await fh.sync();
      } finally {
        await fh.close().catch(() => undefined);
      }
      return { ...totals };
    },
    async abort() {
      closed = true;
      clearTimeout(timer);
      pending.length = 0;
      await flushing;
      await fh.close().catch(() => undefined);
    },
    get frames() {
      return totals.frames;
    },
    get events() {
      return totals.events;
    },
    get bytes() {
      return totals.bytes;
    },
  };
}
