import { randomBytes } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';
// The modules it needs, not core/index.ts: loading all of core took a worker ~0.5 s.
import { encodeBatch } from '../core/batch.ts';
import { createDecodeCounts, decodeFrame } from '../core/decode.ts';
import type { EventType, MarketEvent } from '../core/events.ts';
import { WORKER_READY, type EncodeRequest, type EncodeResult } from './encode-pool.ts';

// One worker of the encode pool: decodes a chunk of recorded frames and returns its events as
// encoded batches (per type, at most batchMaxEvents each), exactly as the listener would seal them.
const { batchMaxEvents } = workerData as { batchMaxEvents: number };
const source = randomBytes(6).toString('hex');
let sequence = 0;

parentPort!.on('message', (request: EncodeRequest) => {
  const data = Buffer.from(request.data);
  const counts = createDecodeCounts();
  const open = new Map<EventType, MarketEvent[]>();
  const bodies: Buffer[] = [];
  const batches: EncodeResult['batches'] = [];
  let size = 0;
  const seal = (type: EventType, events: MarketEvent[]): void => {
    // Copied at once: the encoder reuses its buffer.
    const body = Buffer.from(
      encodeBatch({
        v: 1,
        id: `${source}-${++sequence}`,
        receivedAtMs: request.receivedAtMs,
        events,
      }),
    );
    bodies.push(body);
    size += body.length;
    batches.push({ type, count: events.length, end: size });
  };
  let start = 0;
  for (const end of request.ends) {
    for (const event of decodeFrame(data.subarray(start, end), counts).events) {
      let events = open.get(event.ev);
      if (events === undefined) open.set(event.ev, (events = []));
      events.push(event);
      if (events.length >= batchMaxEvents) {
        open.delete(event.ev);
        seal(event.ev, events);
      }
    }
    start = end;
  }
  for (const [type, events] of open) seal(type, events);
  const out = new Uint8Array(size);
  let offset = 0;
  for (const body of bodies) {
    out.set(body, offset);
    offset += body.length;
  }
  const issues: EncodeResult['issues'] = {};
  for (const [reason, n] of Object.entries(counts)) if (n > 0) issues[reason] = n;
  const result: EncodeResult = { id: request.id, data: out.buffer, batches, issues };
  parentPort!.postMessage(result, [out.buffer]);
});
parentPort!.postMessage(WORKER_READY);
