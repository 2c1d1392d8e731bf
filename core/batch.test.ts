import { pack } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { decodeBatch, encodeBatch, type EventBatch } from './batch.ts';
import { checkBoardEvent, createDecodeCounts, decodeFrame } from './decode.ts';
import type { MarketEvent } from './events.ts';

const events: MarketEvent[] = [
  { ev: 'T', sym: 'AAPL', x: 4, i: '1', p: 190.25, s: 100, t: 1700000000000.5, q: 7 },
  { ev: 'T', sym: 'AAPL', p: 190.3, s: 0.5, c: [12, 37], t: 1700000000001 },
  {
    ev: 'A',
    sym: 'BRK.B',
    v: 10,
    av: 1000,
    op: 400,
    c: 401.5,
    s: 1700000000000,
    e: 1700000001000,
    otc: false,
  },
  { ev: 'LULD', sym: 'MSFT', h: 218.96, l: 198.11, i: [21], t: 1601316752683.746 },
];

describe('batch codec', () => {
  it('round-trips a mixed batch exactly', () => {
    const batch: EventBatch = { v: 1, id: 'l1-42', receivedAtMs: 1700000000002.25, events };
    const out = decodeBatch(encodeBatch(structuredClone(batch)));
    expect(out.issues).toEqual([]);
    expect(out.batch).toEqual(batch);
  });

  it('decodes each batch on its own, in any order, from a fresh decoder state', () => {
    const a = encodeBatch({ v: 1, id: 'a', receivedAtMs: 1, events: events.slice(0, 2) });
    const b = encodeBatch({ v: 1, id: 'b', receivedAtMs: 2, events: events.slice(2) });
    expect(decodeBatch(b).batch?.events).toEqual(events.slice(2));
    expect(decodeBatch(a).batch?.events).toEqual(events.slice(0, 2));
  });

  it('is smaller than the same events as JSON', () => {
    const many = Array.from({ length: 50 }, (_, n) => ({ ...events[0]!, q: n }));
    const packed = encodeBatch({ v: 1, id: 'x', receivedAtMs: 1, events: many });
    expect(packed.length).toBeLessThan(Buffer.byteLength(JSON.stringify(many)) / 2);
  });

  it('counts and drops a garbled, foreign or versioned envelope without throwing', () => {
    const counts = createDecodeCounts();
    const whole = encodeBatch({ v: 1, id: 'x', receivedAtMs: 1, events });
    expect(decodeBatch(whole.subarray(0, whole.length - 5), counts).batch).toBeUndefined();
    expect(decodeBatch(Buffer.from([0xc1]), counts).issues[0]!.reason).toBe('batch_invalid');
    expect(decodeBatch(pack('hello'), counts).issues[0]!.reason).toBe('batch_invalid');
    expect(
      decodeBatch(pack({ v: 2, id: 'x', receivedAtMs: 1, events: [] }), counts).issues[0]!.reason,
    ).toBe('batch_version');
    expect(decodeBatch(pack({ v: 1, id: 'x', events: [] }), counts).issues[0]!.reason).toBe(
      'batch_invalid',
    );
    expect(
      decodeBatch(pack({ v: 1, id: 'a,b', receivedAtMs: 1, events: [] }), counts).batch,
    ).toBeUndefined();
    expect(counts).toMatchObject({ batch_not_msgpack: 1, batch_invalid: 4, batch_version: 1 });
  });

  it('drops a bad event inside a sound envelope and keeps the rest', () => {
    const counts = createDecodeCounts();
    const data = pack({
      v: 1,
      id: 'x',
      receivedAtMs: 1,
      events: [events[0], { ev: 'T', sym: 'A B' }, { ev: 'status', status: 'success' }, events[2]],
    });
    const out = decodeBatch(data, counts);
    expect(out.batch?.events).toEqual([events[0], events[2]]);
    expect(out.issues.map((i) => [i.index, i.reason])).toEqual([
      [1, 'invalid_symbol'],
      [2, 'batch_invalid'],
    ]);
    expect(counts.invalid_symbol).toBe(1);
  });

  it('checks what the boards read when an analyzer decodes, and drops the same bad events', () => {
    // Events as the listener publishes them: every field of the type, absent ones as nil.
    const published = decodeFrame(JSON.stringify(events)).events;
    const batch: EventBatch = { v: 1, id: 'l1-43', receivedAtMs: 1, events: published };
    const checked = decodeBatch(encodeBatch(structuredClone(batch)), undefined, checkBoardEvent);
    expect(checked.batch).toEqual(decodeBatch(encodeBatch(structuredClone(batch))).batch);
    // Absent fields read as absent, not null, whether the boards read them or not.
    for (const event of checked.batch!.events) expect(Object.values(event)).not.toContain(null);
    const counts = createDecodeCounts();
    const data = pack({
      v: 1,
      id: 'x',
      receivedAtMs: 1,
      events: [
        events[0],
        { ev: 'T', sym: 'A B', p: 1 },
        { ev: 'T', sym: 'X', p: -1 },
        { ev: 'A', sym: 'X', e: 1700000001000000 },
        { ev: 'status', status: 'success' },
        events[2],
      ],
    });
    const out = decodeBatch(data, counts, checkBoardEvent);
    expect(out.batch?.events).toEqual([events[0], events[2]]);
    expect(out.issues.map((i) => [i.index, i.reason])).toEqual([
      [1, 'invalid_symbol'],
      [2, 'invalid_field'],
      [3, 'invalid_timestamp'],
      [4, 'batch_invalid'],
    ]);
    expect(counts).toMatchObject({ invalid_symbol: 1, invalid_field: 1, invalid_timestamp: 1 });
  });
});
