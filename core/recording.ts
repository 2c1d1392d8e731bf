/**
 * The recording file format, shared by core/recording-writer.ts and core/recording-reader.ts
 * (byte layout in replay/FORMAT.md): an 8-byte magic, then records `[u32 LE payload length]
 * [u32 LE crc32 of kind+payload][u8 kind][payload]`: one HEADER, the FRAMEs, and on a clean close
 * an INDEX followed by a 16-byte trailer pointing at it. Append-only: a crash leaves a readable
 * prefix, and a reader finds the torn tail by length and checksum.
 */
import { crc32 } from 'node:zlib';

/** The first 8 bytes of every recording file (latin1): `OBREC`, NUL, framing version 1, LF. */
export const RECORDING_MAGIC = 'OBREC\u0000\u0001\n';
/** The header `format` this code writes; readers refuse newer ones. */
export const RECORDING_FORMAT = 1;

/** Layout constants of the format (internal to core: not exported by core/index.ts). */
export const LAYOUT = {
  magic: Buffer.from(RECORDING_MAGIC, 'latin1'),
  /** First 8 bytes of the trailer, followed by the u64 LE offset of the INDEX record. */
  trailerMagic: Buffer.from('OBIDX\u0000\u0001\n', 'latin1'),
  /** Record head: u32 length, u32 crc32, u8 kind. */
  head: 9,
  /** FRAME payload prefix: f64 receive µs, u32 events, u8 types. */
  frameHead: 13,
  trailer: 16,
  /** One index entry: four f64 (timeUs, offset, frame, event). */
  entry: 32,
  kindHeader: 1,
  kindFrame: 2,
  kindIndex: 3,
  /** Longest payload accepted; a longer length field marks a damaged record. */
  maxRecord: 64 * 1024 * 1024,
  /** Index granularity: an entry at the first frame a whole second past the previous entry. */
  entrySpacingUs: 1_000_000,
  block: 1024 * 1024,
} as const;

/** Reference data of a recording. */
export interface RecordingMeta {
  /** Trading date, `YYYY-MM-DD`. */
  date?: string;
  /** Previous close by symbol. */
  prevClose?: Record<string, number>;
  [key: string]: unknown;
}

/** The HEADER record. */
export interface RecordingHeader {
  format: number;
  meta: RecordingMeta;
  /** Where the frames came from, e.g. a feed URL or `jsonl`. */
  source: string;
  createdBy: string;
}

/** One raw wire frame and what `describeFrame` (core/frame-info.ts) says of it. */
export interface RecordedFrame {
  /** Receive time, integer µs since the epoch; non-decreasing within a recording. */
  timeUs: number;
  /** The wire text exactly as received. */
  data: Buffer;
  /** Messages in the frame. */
  events: number;
  /** Type mask (see FrameInfo). */
  types: number;
}

/** Counts over all frames of a recording. `bytes` counts raw frame data only. */
export interface RecordingTotals {
  frames: number;
  events: number;
  bytes: number;
  /** Receive time of the first frame, µs (undefined when there is none). */
  firstUs: number | undefined;
  lastUs: number | undefined;
}

/** A seek point: the first frame at or after a whole second past the previous entry. */
export interface RecordingIndexEntry {
  timeUs: number;
  /** File offset of the frame's record. */
  offset: number;
  /** Ordinals (0-based) of the frame and of its first event. */
  frame: number;
  event: number;
}

/** One whole record: head (with the crc32 of kind+payload) and payload. */
export function encodeRecord(kind: number, payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(LAYOUT.head + payload.length);
  out.writeUInt32LE(payload.length, 0);
  out[8] = kind;
  payload.copy(out, LAYOUT.head);
  out.writeUInt32LE(crc32(out.subarray(8)), 4);
  return out;
}

/** Adds an entry for a frame at `offset` when it starts a new second of the index. */
export function indexFrame(
  entries: RecordingIndexEntry[],
  totals: RecordingTotals,
  timeUs: number,
  offset: number,
): void {
  const last = entries[entries.length - 1];
  if (last === undefined || timeUs >= last.timeUs + LAYOUT.entrySpacingUs) {
    entries.push({ timeUs, offset, frame: totals.frames, event: totals.events });
  }
}

/** INDEX payload: u32 LE length of the totals JSON, the JSON, then the entries. */
export function encodeIndex(totals: RecordingTotals, entries: RecordingIndexEntry[]): Buffer {
  const summary = Buffer.from(JSON.stringify(totals));
  const payload = Buffer.allocUnsafe(4 + summary.length + entries.length * LAYOUT.entry);
  payload.writeUInt32LE(summary.length, 0);
  summary.copy(payload, 4);
  let p = 4 + summary.length;
  for (const { timeUs, offset, frame, event } of entries) {
    p = payload.writeDoubleLE(timeUs, p);
    p = payload.writeDoubleLE(offset, p);
    p = payload.writeDoubleLE(frame, p);
    p = payload.writeDoubleLE(event, p);
  }
  return payload;
}

/** Reads what {@link encodeIndex} wrote. */
export function decodeIndex(payload: Buffer): {
  totals: RecordingTotals;
  entries: RecordingIndexEntry[];
} {
  const jsonLength = payload.readUInt32LE(0);
  const stored = JSON.parse(payload.toString('utf8', 4, 4 + jsonLength)) as RecordingTotals;
  const { frames, events, bytes, firstUs, lastUs } = stored;
  const totals: RecordingTotals = { frames, events, bytes, firstUs, lastUs };
  const entries: RecordingIndexEntry[] = [];
  for (let p = 4 + jsonLength; p + LAYOUT.entry <= payload.length; p += LAYOUT.entry) {
    entries.push({
      timeUs: payload.readDoubleLE(p),
      offset: payload.readDoubleLE(p + 8),
      frame: payload.readDoubleLE(p + 16),
      event: payload.readDoubleLE(p + 24),
    });
  }
  return { totals, entries };
}
