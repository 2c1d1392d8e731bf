import { Packr, pack } from 'msgpackr';
import { z } from 'zod';
import {
  EVENT_TYPES,
  RecordBuffer,
  StagedEvents,
  checkBoardEvent,
  decodeBatch,
  decodeFrame,
  encodeBatch,
  prepareBatch,
  transcodeFrame,
  type EventBatch,
  type MarketEvent,
} from '../core/index.ts';
import { measureSync, type Measurement } from './measure.ts';
import { sampleWireEvents, toFrames } from './sample.ts';

/** Options of {@link benchDecode}. */
export interface DecodeBenchOptions {
  /** Events per run. @default 500000 */
  events?: number;
  /** Events per msgpack batch, as the listener publishes them. @default 500 */
  batchEvents?: number;
}

/**
 * Decoding throughput on one core: JSON frames as Massive sends them (parse + validate +
 * normalise), msgpack batches as analyzers receive them (unpack + validate), and the reference
 * points that explain them (raw JSON.parse, raw unpack, the same validation written with zod).
 */
export function benchDecode(options: DecodeBenchOptions = {}): Measurement[] {
  const count = options.events ?? 500_000;
  const batchEvents = options.batchEvents ?? 500;
  const wire = sampleWireEvents(count);
  const frames = toFrames(wire);
  const frameBytes = frames.reduce((sum, f) => sum + Buffer.byteLength(f), 0);
  // As the socket hands them over.
  const frameBuffers = frames.map((f) => Buffer.from(f));
  const fastTaken = frameBuffers.filter((f) => transcodeFrame(f, new StagedEvents()) !== undefined);
  if (fastTaken.length !== frames.length)
    throw new Error(
      `decode bench: the fast path took ${fastTaken.length} of ${frames.length} frames`,
    );

  const decoded = frames.flatMap((f) => decodeFrame(f).events);
  if (decoded.length !== count)
    throw new Error(`decode bench: decoded ${decoded.length} of ${count} events`);
  const batches: Buffer[] = [];
  for (let i = 0; i < decoded.length; i += batchEvents) {
    const batch: EventBatch = {
      v: 1,
      id: `b${i}`,
      receivedAtMs: 1795530600000.5,
      events: decoded.slice(i, i + batchEvents),
    };
    batches.push(encodeBatch(batch));
  }
  const batchBytes = batches.reduce((sum, b) => sum + b.length, 0);
  const plain = new Packr({ useRecords: true, mapsAsObjects: true });

  const sink = { events: 0 };
  const results = [
    {
      ...measureSync('json.parse-only', count, () =>
        frames.forEach((f) => (sink.events += (JSON.parse(f) as unknown[]).length)),
      ),
      bytesPerEvent: round(frameBytes / count),
    },
    {
      ...measureSync('json.decodeFrame', count, () =>
        frames.forEach((f) => (sink.events += decodeFrame(f).events.length)),
      ),
      bytesPerEvent: round(frameBytes / count),
    },
    measureSync('json.zod-validation', count, () =>
      frames.forEach((f) => (sink.events += zodDecode(f).length)),
    ),
    {
      ...measureSync('msgpack.unpack-only', count, () =>
        batches.forEach((b) => (sink.events += (plain.unpack(b) as EventBatch).events.length)),
      ),
      bytesPerEvent: round(batchBytes / count),
    },
    {
      ...measureSync('msgpack.decodeBatch', count, () =>
        batches.forEach((b) => (sink.events += decodeBatch(b).batch!.events.length)),
      ),
      bytesPerEvent: round(batchBytes / count),
    },
    {
      ...measureSync('msgpack.decodeBatch.boards', count, () =>
        batches.forEach(
          (b) => (sink.events += decodeBatch(b, undefined, checkBoardEvent).batch!.events.length),
        ),
      ),
      note: 'as analyzers decode: only what the boards read is checked (checkBoardEvent)',
    },
    measureSync('msgpack.encodeBatch', count, () => {
      for (let i = 0; i < decoded.length; i += batchEvents) {
        sink.events += encodeBatch({
          v: 1,
          id: 'x',
          receivedAtMs: 1,
          events: decoded.slice(i, i + batchEvents),
        }).length;
      }
    }),
    // What the listener does per frame: from the wire bytes to sealed batch bodies, both ways.
    {
      ...measureSync('listener.frames-to-batches', count, () => {
        const staged = new StagedEvents();
        const open = EVENT_TYPES.map((type) => new RecordBuffer(type));
        for (const frame of frameBuffers) {
          const n = transcodeFrame(frame, staged) ?? 0;
          for (let k = 0; k < n; k++) {
            const records = open[staged.types[k]!]!;
            records.appendStaged(staged.bytes, staged.starts[k]!, staged.ends[k]!);
            if (records.count === batchEvents) sink.events += records.seal('x', 1).length;
          }
        }
      }),
      note: 'the fast path (transcodeFrame): no JS object per event',
    },
    measureSync('listener.frames-to-batches.decoded', count, () => {
      const open = new Map<string, MarketEvent[]>();
      for (const frame of frameBuffers) {
        for (const event of decodeFrame(frame).events) {
          let events = open.get(event.ev);
          if (events === undefined) open.set(event.ev, (events = []));
          events.push(event);
          if (events.length === batchEvents) {
            sink.events += encodeBatch({ v: 1, id: 'x', receivedAtMs: 1, events }).length;
            open.set(event.ev, []);
          }
        }
      }
    }),
    // What an analyzer does to a group before its script call: reduce, then pack the records.
    measureSync('analyzer.prepareBatch', count, () => {
      for (let i = 0; i < decoded.length; i += 16_000) {
        for (const part of prepareBatch(decoded.slice(i, i + 16_000)).dates)
          sink.events += pack([
            part.aggregateRecords,
            part.tradeRecords,
            part.windowRecords,
          ]).length;
      }
    }),
  ];
  if (sink.events === 0) throw new Error('decode bench did no work');
  return results;
}

const round = (n: number): number => Math.round(n * 10) / 10;

// The same rules as core/decode.ts written as zod schemas, to measure what the library would cost
// on the hot path (timestamp unit detection and the ticker rename left out, in zod's favour).
const price = z.number().nonnegative();
const ts = z.number().int();
const zodEvent = z.discriminatedUnion('ev', [
  z.object({
    ev: z.literal('T'),
    sym: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._\-/^=+]{0,31}$/),
    x: z.int().optional(),
    i: z.string().optional(),
    z: z.int().optional(),
    p: price.optional(),
    s: price.optional(),
    c: z.array(z.int()).optional(),
    t: ts.optional(),
    q: z.int().optional(),
  }),
  z.object({
    ev: z.enum(['A', 'AM']),
    sym: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._\-/^=+]{0,31}$/),
    v: price.optional(),
    av: price.optional(),
    op: price.optional(),
    vw: price.optional(),
    o: price.optional(),
    c: price.optional(),
    h: price.optional(),
    l: price.optional(),
    a: price.optional(),
    z: price.optional(),
    s: ts.optional(),
    e: ts.optional(),
  }),
  z.object({
    ev: z.literal('Q'),
    sym: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._\-/^=+]{0,31}$/),
    bx: z.int().optional(),
    bp: price.optional(),
    bs: price.optional(),
    ax: z.int().optional(),
    ap: price.optional(),
    as: price.optional(),
    c: z.int().optional(),
    i: z.array(z.int()).optional(),
    t: ts.optional(),
    q: z.int().optional(),
    z: z.int().optional(),
  }),
]);

function zodDecode(frame: string): MarketEvent[] {
  const out: MarketEvent[] = [];
  for (const raw of JSON.parse(frame) as unknown[]) {
    const parsed = zodEvent.safeParse(raw);
    if (parsed.success) out.push(parsed.data);
  }
  return out;
}
