import { Packr } from 'msgpackr';
import type { DecodeCounts, DecodeIssue } from './decode.ts';
import { parseMessage } from './decode.ts';
import type { MarketEvent, StatusMessage } from './events.ts';

/** Batch ids: short, and free of the `,` that separates ids in the apply script. */
const BATCH_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** Version of the batch layout; a consumer drops (and counts) batches of another version. */
export const BATCH_VERSION = 1;

/** One AMQP message: many events of one frame window, with what a consumer needs to dedupe and time them. */
export interface EventBatch {
  v: typeof BATCH_VERSION;
  /** Unique per batch; consumers use it to apply a redelivered batch only once. */
  id: string;
  /** Receive time of the batch's oldest event at the listener, epoch ms (fractional). */
  receivedAtMs: number;
  events: MarketEvent[];
}

/** The result of {@link decodeBatch}: the batch when its envelope is sound, and every issue found. */
export interface DecodedBatch {
  batch?: EventBatch;
  issues: DecodeIssue[];
}

// Records (msgpackr's structure extension) without shared structures: each message defines the
// shapes it uses once, inline, so every batch decodes on its own in any process.
// Absent fields travel as one-byte nils (decoded as missing) rather than msgpack's 3-byte undefined.
const packr = new Packr({ useRecords: true, mapsAsObjects: true, encodeUndefinedAsNil: true });

/** Encodes a batch as one self-contained msgpack message. */
export function encodeBatch(batch: EventBatch): Buffer {
  return packr.pack(batch);
}

/**
 * Decodes and validates a batch. A broken envelope yields no batch; a bad event inside a sound
 * envelope is dropped on its own. Issues are counted in `counts` when given; nothing throws.
 * Each event goes through `check`: by default every field ({@link parseMessage}); analyzers pass
 * `checkBoardEvent`, which checks what the boards read.
 */
export function decodeBatch(
  data: Uint8Array,
  counts?: DecodeCounts,
  check: (raw: unknown) => MarketEvent | StatusMessage | DecodeIssue = parseMessage,
): DecodedBatch {
  const out = decodeEnvelope(data);
  if (out.batch !== undefined) {
    const events = out.batch.events;
    let kept = 0;
    for (let index = 0; index < events.length; index++) {
      const parsed = check(events[index]);
      if ('reason' in parsed) out.issues.push({ ...parsed, index });
      else if (parsed.ev === 'status')
        out.issues.push({ reason: 'batch_invalid', detail: 'status message in a batch', index });
      else events[kept++] = parsed;
    }
    events.length = kept;
  }
  if (counts !== undefined) for (const issue of out.issues) counts[issue.reason]++;
  return out;
}

function decodeEnvelope(data: Uint8Array): DecodedBatch {
  let value: unknown;
  try {
    value = packr.unpack(data);
  } catch (error) {
    return {
      issues: [{ reason: 'batch_not_msgpack', detail: (error as Error).message.slice(0, 120) }],
    };
  }
  if (typeof value !== 'object' || value === null) {
    return { issues: [{ reason: 'batch_invalid', detail: 'batch is not an object' }] };
  }
  const batch = value as Partial<EventBatch>;
  if (typeof batch.v === 'number' && batch.v !== BATCH_VERSION) {
    return { issues: [{ reason: 'batch_version', detail: `batch version ${String(batch.v)}` }] };
  }
  if (
    batch.v !== BATCH_VERSION ||
    typeof batch.id !== 'string' ||
    !BATCH_ID.test(batch.id) ||
    !Array.isArray(batch.events)
  ) {
    return { issues: [{ reason: 'batch_invalid', detail: 'batch lacks a valid id or events' }] };
  }
  if (typeof batch.receivedAtMs !== 'number' || !Number.isFinite(batch.receivedAtMs)) {
    return { issues: [{ reason: 'batch_invalid', detail: 'batch lacks receivedAtMs' }] };
  }
  return { batch: batch as EventBatch, issues: [] };
}
