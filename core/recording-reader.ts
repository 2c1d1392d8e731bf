/** Reads recordings (format in core/recording.ts): streaming, seekable, torn tails detected. */
import { open, type FileHandle } from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import {
  LAYOUT,
  RECORDING_FORMAT,
  decodeIndex,
  indexFrame,
  type RecordedFrame,
  type RecordingHeader,
  type RecordingIndexEntry,
  type RecordingMeta,
  type RecordingTotals,
} from './recording.ts';

const { head: HEAD, frameHead: FRAME_HEAD, trailer: TRAILER } = LAYOUT;

/** A half-open window `[fromUs, toUs)` of receive times; either end may be left open. */
export interface FrameRange {
  fromUs?: number;
  toUs?: number;
}

/**
 * An open recording. Frames are read in 1 MiB blocks into a reused buffer; each frame's `data`
 * is its own copy, valid for ever. Several iterations may run at once.
 */
export interface Recording {
  readonly path: string;
  readonly header: RecordingHeader;
  readonly meta: RecordingMeta;
  readonly source: string;
  /** Totals of the readable frames. */
  readonly totals: RecordingTotals;
  readonly index: readonly RecordingIndexEntry[];
  /** File size when opened. */
  readonly size: number;
  /** True when the index came from the trailer (a clean close), false when a scan rebuilt it. */
  readonly indexed: boolean;
  /** Bytes after the last good record (a crash, or a write in progress), if any. */
  readonly torn: { offset: number; bytes: number } | undefined;
  /** Bytes read from the file so far, opening included. */
  readonly bytesRead: number;
  /** The frames in order; seeks through the index to `range.fromUs`. */
  frames(range?: FrameRange): AsyncIterable<RecordedFrame>;
  /** The same frames, grouped by the block they were read in (fewer awaits when replaying). */
  chunks(range?: FrameRange): AsyncIterable<RecordedFrame[]>;
  close(): Promise<void>;
}

interface Counter {
  bytes: number;
}

interface Layout {
  totals: RecordingTotals;
  entries: RecordingIndexEntry[];
  /** End of the frame records. */
  dataEnd: number;
  torn: Recording['torn'];
  indexed: boolean;
}

async function readAt(fh: FileHandle, length: number, at: number, counter: Counter) {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, at + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  counter.bytes += got;
  return buf.subarray(0, got);
}

/** The valid record at `offset`, or undefined when it is truncated or fails its checksum. */
async function recordAt(fh: FileHandle, offset: number, size: number, counter: Counter) {
  const head = await readAt(fh, HEAD, offset, counter);
  if (head.length < HEAD) return undefined;
  const length = head.readUInt32LE(0);
  if (length > LAYOUT.maxRecord || offset + HEAD + length > size) return undefined;
  const payload = await readAt(fh, length, offset + HEAD, counter);
  if (crc32(payload, crc32(head.subarray(8))) !== head.readUInt32LE(4)) return undefined;
  return { kind: head[8], payload, end: offset + HEAD + length };
}

/** Called with each valid record, its payload at `buf[start, end)`; false stops the walk. */
type Visit = (kind: number, buf: Buffer, start: number, end: number, offset: number) => boolean;
type WalkEnd = { offset: number; reason: 'end' | 'stopped' | 'bad' };

/**
 * Walks the records of `[start, end)` of the file block by block, yielding after each block,
 * and returns where it stopped: at `end`, where `visit` said so, or at the first bad record.
 */
async function* walk(
  fh: FileHandle,
  [start, end]: [number, number],
  counter: Counter,
  visit: Visit,
): AsyncGenerator<void, WalkEnd> {
  let buf = Buffer.allocUnsafe(Math.min(LAYOUT.block, Math.max(end - start, HEAD)));
  let base = start;
  let filled = 0;
  for (;;) {
    const want = Math.min(buf.length - filled, end - base - filled);
    if (want > 0) {
      const { bytesRead } = await fh.read(buf, filled, want, base + filled);
      if (bytesRead === 0) return { offset: base, reason: 'bad' };
      counter.bytes += bytesRead;
      filled += bytesRead;
    }
    let p = 0;
    while (filled - p >= HEAD) {
      const length = buf.readUInt32LE(p);
      const kind = buf[p + 8]!;
      if (length > LAYOUT.maxRecord || (kind === LAYOUT.kindFrame && length < FRAME_HEAD)) {
        return { offset: base + p, reason: 'bad' };
      }
      const next = p + HEAD + length;
      if (next > filled) break;
      if (crc32(buf.subarray(p + 8, next)) !== buf.readUInt32LE(p + 4)) {
        return { offset: base + p, reason: 'bad' };
      }
      if (!visit(kind, buf, p + HEAD, next, base + p))
        return { offset: base + p, reason: 'stopped' };
      p = next;
    }
    if (base + filled === end) return { offset: base + p, reason: p === filled ? 'end' : 'bad' };
    yield;
    buf.copy(buf, 0, p, filled);
    base += p;
    filled -= p;
    const need = filled >= HEAD ? HEAD + buf.readUInt32LE(0) : 0;
    if (need > buf.length) buf = Buffer.concat([buf.subarray(0, filled)], need);
  }
}

/** How many entries have `timeUs < t` (or `<= t` when `orEqual`). */
function entriesBefore(entries: readonly RecordingIndexEntry[], t: number, orEqual: boolean) {
  let lo = 0;
  for (let hi = entries.length; lo < hi;) {
    const mid = (lo + hi) >>> 1;
    const at = entries[mid]!.timeUs;
    if (at < t || (orEqual && at === t)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The index of a cleanly closed file, found through its trailer. */
async function fromTrailer(fh: FileHandle, dataStart: number, size: number, counter: Counter) {
  if (size < dataStart + HEAD + TRAILER) return undefined;
  const trailer = await readAt(fh, TRAILER, size - TRAILER, counter);
  if (!trailer.subarray(0, 8).equals(LAYOUT.trailerMagic)) return undefined;
  const offset = Number(trailer.readBigUInt64LE(8));
  if (offset < dataStart || offset > size) return undefined;
  const found = await recordAt(fh, offset, size, counter);
  if (found?.kind !== LAYOUT.kindIndex || found.end !== size - TRAILER) return undefined;
  return {
    ...decodeIndex(found.payload),
    dataEnd: offset,
    torn: undefined,
    indexed: true,
  } satisfies Layout;
}

/** Rebuilds the index of a file without a valid trailer, up to its first bad record. */
async function scan(fh: FileHandle, dataStart: number, size: number, counter: Counter) {
  const totals: RecordingTotals = {
    frames: 0,
    events: 0,
    bytes: 0,
    firstUs: undefined,
    lastUs: undefined,
  };
  const entries: RecordingIndexEntry[] = [];
  let indexEnd = 0;
  const walker = walk(fh, [dataStart, size], counter, (kind, buf, start, end, offset) => {
    if (kind === LAYOUT.kindIndex) indexEnd = offset + HEAD + end - start;
    if (kind !== LAYOUT.kindFrame) return false;
    const timeUs = buf.readDoubleLE(start);
    indexFrame(entries, totals, timeUs, offset);
    totals.frames += 1;
    totals.events += buf.readUInt32LE(start + 8);
    totals.bytes += end - start - FRAME_HEAD;
    totals.firstUs ??= timeUs;
    totals.lastUs = timeUs;
    return true;
  });
  let step = await walker.next();
  while (step.done !== true) step = await walker.next();
  const dataEnd = step.value.offset;
  let tornAt = dataEnd;
  if (indexEnd > 0) {
    // An index whose trailer is damaged or followed by other bytes: skip it and a whole trailer.
    const trailer = await readAt(fh, TRAILER, indexEnd, counter);
    const whole = trailer.length === TRAILER && trailer.subarray(0, 8).equals(LAYOUT.trailerMagic);
    tornAt =
      whole && Number(trailer.readBigUInt64LE(8)) === dataEnd ? indexEnd + TRAILER : indexEnd;
  }
  const torn = tornAt < size ? { offset: tornAt, bytes: size - tornAt } : undefined;
  return { totals, entries, dataEnd, torn, indexed: false } satisfies Layout;
}

/** The HEADER record's JSON, checked; a newer format is refused. */
function parseHeader(payload: Buffer, path: string): RecordingHeader {
  let header: Partial<RecordingHeader>;
  try {
    header = (JSON.parse(payload.toString('utf8')) ?? {}) as Partial<RecordingHeader>;
  } catch (cause) {
    throw new Error(`${path}: the recording header is not JSON`, { cause });
  }
  const { format, meta, source = '', createdBy = '' } = header;
  if (typeof format !== 'number' || !Number.isInteger(format) || typeof meta !== 'object') {
    throw new Error(`${path}: the recording header lacks its format or meta`);
  }
  if (format > RECORDING_FORMAT) {
    throw new Error(
      `${path}: recording format ${format} is newer than this openbell reads ` +
        `(${RECORDING_FORMAT}); upgrade openbell`,
    );
  }
  return { format, meta: meta ?? {}, source: String(source), createdBy: String(createdBy) };
}

async function load(fh: FileHandle, path: string): Promise<Recording> {
  const size = (await fh.stat()).size;
  const counter: Counter = { bytes: 0 };
  if (!(await readAt(fh, LAYOUT.magic.length, 0, counter)).equals(LAYOUT.magic)) {
    throw new Error(`${path} is not an openbell recording (bad magic)`);
  }
  const first = await recordAt(fh, LAYOUT.magic.length, size, counter);
  if (first?.kind !== LAYOUT.kindHeader) {
    throw new Error(`${path}: the recording header is missing or damaged`);
  }
  const header = parseHeader(first.payload, path);
  const dataStart = first.end;
  const layout =
    (await fromTrailer(fh, dataStart, size, counter)) ?? (await scan(fh, dataStart, size, counter));
  const { entries, dataEnd } = layout;

  async function* chunks(range: FrameRange = {}): AsyncGenerator<RecordedFrame[]> {
    const fromUs = range.fromUs ?? -Infinity;
    const toUs = range.toUs ?? Infinity;
    const start = entries[entriesBefore(entries, fromUs, true) - 1]?.offset ?? dataStart;
    const end = entries[entriesBefore(entries, toUs, false)]?.offset ?? dataEnd;
    let out: RecordedFrame[] = [];
    const walker = walk(fh, [start, end], counter, (kind, buf, s, e) => {
      const timeUs = buf.readDoubleLE(s);
      if (kind !== LAYOUT.kindFrame || timeUs >= toUs) return false;
      if (timeUs < fromUs) return true;
      const data = Buffer.allocUnsafe(e - s - FRAME_HEAD);
      buf.copy(data, 0, s + FRAME_HEAD, e);
      out.push({ timeUs, data, events: buf.readUInt32LE(s + 8), types: buf[s + 12]! });
      return true;
    });
    for (;;) {
      const step = await walker.next();
      if (out.length > 0) yield out;
      out = [];
      if (step.done === true) {
        const { offset, reason } = step.value;
        if (reason === 'bad') throw new Error(`${path}: damaged record at offset ${offset}`);
        return;
      }
    }
  }

  return {
    path,
    header,
    meta: header.meta,
    source: header.source,
    totals: layout.totals,
    index: entries,
    size,
    indexed: layout.indexed,
    torn: layout.torn,
    get bytesRead() {
      return counter.bytes;
    },
    chunks,
    async *frames(range) {
      for await (const chunk of chunks(range)) yield* chunk;
    },
    close: () => fh.close(),
  };
}

/**
 * Opens a recording: checks the magic and the header (refusing a newer format), then takes the
 * index from the trailer, or, without a valid trailer, scans the file once to rebuild it up to
 * the first bad record (`torn`).
 */
export async function openRecording(path: string): Promise<Recording> {
  const fh = await open(path, 'r');
  try {
    return await load(fh, path);
  } catch (error) {
    await fh.close();
    throw error;
  }
}
