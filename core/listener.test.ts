import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { sampleWireEvents, toFrames } from '../bench/sample.ts';
import { decodeBatch } from './batch.ts';
import { decodeFrame } from './decode.ts';
import type { MarketEvent } from './events.ts';
import { createListener } from './listener.ts';
import type { BatchPublisher, BatchPublisherStats } from './publisher.ts';

/**
 * A publisher whose broker can be stalled at will: the fault (a broker that stops confirming)
 * is what this test needs, and a real broker cannot be stalled on cue.
 */
function stallablePublisher() {
  const sent: { key: string; body: Buffer; headers: Record<string, unknown> }[] = [];
  let open = true;
  let wake: (() => void) | undefined;
  const publisher: BatchPublisher = {
    start: () => Promise.resolve(),
    tryPublish(key, body, headers) {
      if (!open) return false;
      sent.push({ key, body, headers });
      return true;
    },
    whenWritable: () => new Promise<void>((resolve) => (wake = resolve)),
    stats: {} as BatchPublisherStats,
    close: () => Promise.resolve(),
  };
  return {
    publisher,
    sent,
    stall: () => (open = false),
    resume: () => {
      open = true;
      wake?.();
    },
  };
}

const log = pino({ level: 'silent' });
const trade = (n: number): MarketEvent => ({
  ev: 'T',
  sym: 'AAPL',
  t: 1_795_530_600_000 + n,
  p: 1,
  s: n,
});

describe('listener', () => {
  it('batches frames it reads itself exactly as the events they decode to', async () => {
    const frames = toFrames(sampleWireEvents(3000, 7), 8);
    const batches = async (
      push: (listener: ReturnType<typeof createListener>, frame: string) => void,
    ) => {
      const fake = stallablePublisher();
      const listener = createListener({
        publisher: fake.publisher,
        log,
        batchMaxEvents: 100,
        batchMaxDelayMs: 60_000,
      });
      for (const frame of frames) push(listener, frame);
      await listener.flush();
      expect(listener.stats.bufferedEvents).toBe(0);
      return {
        stats: { ...listener.stats },
        sent: fake.sent.map((s) => {
          const { batch } = decodeBatch(s.body);
          return [s.key, s.headers['x-openbell-events'], batch!.events];
        }),
      };
    };
    let taken = 0;
    const fast = await batches((listener, frame) => {
      taken += listener.pushFrame(Buffer.from(frame), 1) ?? 0;
    });
    const slow = await batches((listener, frame) => listener.push(decodeFrame(frame).events, 1));
    expect(taken).toBe(3000);
    expect(fast.sent.length).toBeGreaterThan(30);
    expect(fast).toEqual(slow);
  });

  it('leaves a frame it cannot read to the decoder, taking nothing of it', async () => {
    const fake = stallablePublisher();
    const listener = createListener({ publisher: fake.publisher, log, batchMaxDelayMs: 60_000 });
    const frame =
      '[{"ev":"T","sym":"A","p":1,"s":1,"t":1795530600000},{"ev":"status","status":"x"}]';
    expect(listener.pushFrame(Buffer.from(frame), 1)).toBeUndefined();
    expect(listener.stats).toMatchObject({ events: {}, bufferedEvents: 0 });
    await listener.flush();
    expect(fake.sent).toEqual([]);
  });

  it('batches per event type up to the size limit, with the oldest receive time', async () => {
    const fake = stallablePublisher();
    const listener = createListener({
      publisher: fake.publisher,
      log,
      batchMaxEvents: 3,
      batchMaxDelayMs: 1000,
    });
    listener.push([trade(1), trade(2), { ev: 'A', sym: 'AAPL', e: 1, av: 1, c: 1 }], 100.5);
    listener.push([trade(3), trade(4)], 200);
    await expect.poll(() => fake.sent.map((s) => s.key)).toEqual(['T']);
    await listener.flush();
    expect(fake.sent.map((s) => [s.key, s.headers['x-openbell-events']])).toEqual([
      ['T', 3],
      ['A', 1],
      ['T', 1],
    ]);
    const first = decodeBatch(fake.sent[0]!.body).batch!;
    expect(first.receivedAtMs).toBe(100.5);
    expect(first.events.map((e) => (e as { s: number }).s)).toEqual([1, 2, 3]);
    expect(new Set(fake.sent.map((s) => decodeBatch(s.body).batch!.id)).size).toBe(3);
    expect(listener.stats).toMatchObject({ batches: 3, bufferedEvents: 0, events: { T: 4, A: 1 } });
  });

  it('closes within its deadline while the broker is down, counting what it could not send', async () => {
    const fake = stallablePublisher();
    const listener = createListener({
      publisher: fake.publisher,
      log,
      batchMaxEvents: 10,
      batchMaxDelayMs: 1000,
    });
    fake.stall();
    listener.push(
      Array.from({ length: 25 }, (_, i) => trade(i)),
      1,
    );
    const started = Date.now();
    await listener.close(200);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(listener.stats).toMatchObject({
      droppedEvents: 0,
      closedEvents: 25,
      bufferedEvents: 0,
      batches: 0,
    });
  });

  it('seals a partial batch after the delay limit', async () => {
    const fake = stallablePublisher();
    const listener = createListener({
      publisher: fake.publisher,
      log,
      batchMaxEvents: 100,
      batchMaxDelayMs: 5,
    });
    listener.push([trade(1)], 1);
    expect(fake.sent).toHaveLength(0);
    await expect.poll(() => fake.sent.length).toBe(1);
    await listener.close();
  });

  it('keeps reading while the broker stalls, drops the oldest batches past its bound, and counts them', async () => {
    const fake = stallablePublisher();
    const listener = createListener({
      publisher: fake.publisher,
      log,
      batchMaxEvents: 10,
      batchMaxDelayMs: 1000,
      bufferMaxEvents: 1000,
    });
    fake.stall();
    for (let n = 0; n < 150; n++)
      listener.push(
        Array.from({ length: 10 }, (_, i) => trade(n * 10 + i)),
        n,
      );
    expect(listener.stats).toMatchObject({
      droppedEvents: 500,
      droppedBatches: 50,
      bufferedEvents: 1000,
      batches: 0,
    });
    fake.resume();
    await listener.flush();
    expect(listener.stats).toMatchObject({ batches: 100, bufferedEvents: 0 });
    // Freshness over completeness: what survives is the newest data, in order.
    const sizes = fake.sent.map((s) => (decodeBatch(s.body).batch!.events[0] as { s: number }).s);
    expect(sizes[0]).toBe(500);
    expect(sizes.at(-1)).toBe(1490);
  });
});
