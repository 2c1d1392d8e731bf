import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { sampleWireEvents, toFrames } from '../bench/sample.ts';
import { decodeBatch, encodeBatch } from './batch.ts';
import { decodeFrame, isValidSymbol } from './decode.ts';
import { RecordBuffer, StagedEvents, transcodeFrame } from './event-records.ts';
import { EVENT_TYPES, type EventType, type MarketEvent } from './events.ts';

/** The events of `frame` as the fast path batches them, per type, decoded again; undefined when refused. */
function viaFastPath(frame: string): Partial<Record<EventType, unknown[]>> | undefined {
  const staged = new StagedEvents();
  const count = transcodeFrame(Buffer.from(frame), staged);
  if (count === undefined) {
    expect(staged.count).toBe(0);
    return undefined;
  }
  expect(count).toBe(staged.count);
  const buffers = new Map<EventType, RecordBuffer>();
  for (let n = 0; n < count; n++) {
    const type = EVENT_TYPES[staged.types[n]!]!;
    if (!buffers.has(type)) buffers.set(type, new RecordBuffer(type, 16));
    buffers.get(type)!.appendStaged(staged.bytes, staged.starts[n]!, staged.ends[n]!);
  }
  return Object.fromEntries(
    [...buffers].map(([type, records]) => [type, decoded(records.seal('fast-1', 1.5))]),
  );
}

/** The same, by the ordinary path: decodeFrame, then msgpackr's own encoding of each batch. */
function viaDecoder(frame: string): Partial<Record<EventType, unknown[]>> {
  const byType = new Map<EventType, MarketEvent[]>();
  for (const event of decodeFrame(frame).events) {
    if (!byType.has(event.ev)) byType.set(event.ev, []);
    byType.get(event.ev)!.push(event);
  }
  return Object.fromEntries(
    [...byType].map(([type, events]) => [
      type,
      decoded(encodeBatch({ v: 1, id: 'fast-1', receivedAtMs: 1.5, events })),
    ]),
  );
}

function decoded(body: Buffer): unknown[] {
  const { batch, issues } = decodeBatch(body);
  expect(issues).toEqual([]);
  expect(batch?.id).toBe('fast-1');
  expect(batch?.receivedAtMs).toBe(1.5);
  return batch!.events;
}

const trade = {
  ev: 'T',
  sym: 'BRK.B',
  i: '52983525029461',
  x: 4,
  p: 410.5,
  s: 100,
  c: [12, 37],
  t: 1_795_530_600_123,
  q: 1_065_213,
  z: 1,
};
const bar = {
  ev: 'A',
  sym: 'AAPL',
  v: 4110,
  av: 9_470_157,
  op: 0.0847,
  vw: 0.0859,
  o: 0.0856,
  c: 0.0856,
  h: 0.0856,
  l: 0.0856,
  a: 0.0857,
  z: 685,
  s: 1_795_530_600_000,
  e: 1_795_530_601_000,
  otc: true,
};
const quote = {
  ev: 'Q',
  sym: 'MSFT',
  bx: 4,
  bp: 114.125,
  bs: 100,
  ax: 7,
  ap: 114.128_999_999_999_99,
  as: 160,
  c: 0,
  i: [604],
  t: 1_795_530_600_000,
  q: 50_385_480,
  z: 3,
};

describe('transcodeFrame', () => {
  it('takes every frame of the bench sample, as the decoder reads it', () => {
    for (const frame of toFrames(sampleWireEvents(5000, 3), 4)) {
      const fast = viaFastPath(frame);
      expect(fast).toBeDefined();
      expect(fast).toEqual(viaDecoder(frame));
    }
  });

  it.each([
    [
      'spaces and newlines',
      `[ {"ev" : "T" ,\n "sym":"AB", "p" : 1.25 , "s":3, "t":1795530600000 } ]`,
    ],
    ['nulls as absent fields', JSON.stringify([{ ...trade, x: null, c: null }])],
    [
      'unknown scalar fields, skipped',
      JSON.stringify([{ ...bar, extra: 'x', n: -1.5e3, ok: false, no: null }]),
    ],
    [
      'long and exponent decimals',
      `[${JSON.stringify(quote)},{"ev":"T","sym":"A","p":1.5e2,"s":123456789.123456789,"x":2E1}]`,
    ],
    [
      'integers written with a fraction',
      `[{"ev":"T","sym":"A","x":4.0,"p":1,"s":2,"t":1795530600000}]`,
    ],
    [
      'empty and negative integer arrays',
      `[{"ev":"T","sym":"A","c":[],"p":1,"s":1},{"ev":"Q","sym":"A","i":[-1, 2 ,3]}]`,
    ],
    ['large integers', JSON.stringify([{ ...trade, q: 2 ** 40, x: -70000, z: 255, s: 65536 }])],
    ['a per-minute bar', JSON.stringify([{ ...bar, ev: 'AM', otc: false }])],
    ['integers in the record-id byte range', JSON.stringify([{ ...trade, x: 64, z: 127, s: 100 }])],
    ['every symbol character', JSON.stringify([{ ...trade, sym: 'Zz9._-/^=+' }])],
  ])('reads %s exactly as the decoder does', (_, frame) => {
    const fast = viaFastPath(frame);
    expect(fast).toBeDefined();
    expect(fast).toEqual(viaDecoder(frame));
  });

  it.each([
    ['an empty frame', '[]'],
    [
      'a status message',
      '[{"ev":"status","status":"connected","message":"Connected Successfully"}]',
    ],
    [
      'a status among events',
      JSON.stringify([trade, { ev: 'status', status: 'success', message: 'x' }]),
    ],
    ['a type it does not read', JSON.stringify([{ ev: 'LULD', T: 'AAPL', h: 1, l: 1, t: 1 }])],
    ['an unknown type', JSON.stringify([{ ev: 'XX', sym: 'AAPL' }])],
    ['"ev" not first', '[{"sym":"AAPL","ev":"T","p":1}]'],
    ['a second "ev"', '[{"ev":"T","sym":"AAPL","ev":"Q"}]'],
    ['a repeated field', '[{"ev":"T","sym":"AAPL","p":1,"p":2}]'],
    ['a repeated symbol', '[{"ev":"T","sym":"AAPL","sym":"MSFT"}]'],
    ['no symbol', '[{"ev":"T","p":1}]'],
    ['a bad symbol', JSON.stringify([{ ...trade, sym: 'AA:PL' }])],
    ['a symbol past 32 characters', JSON.stringify([{ ...trade, sym: 'A'.repeat(33) }])],
    ['an escaped string', '[{"ev":"T","sym":"AAPL","i":"a\\"b"}]'],
    ['a non-ASCII string', JSON.stringify([{ ...trade, i: 'é' }])],
    ['a nested unknown field', JSON.stringify([{ ...trade, extra: { a: 1 } }])],
    ['a decimal-string size', JSON.stringify([{ ...trade, ds: '0.5' }])],
    ['a microsecond timestamp', JSON.stringify([{ ...trade, t: 1_795_530_600_000_000 }])],
    ['a timestamp string', JSON.stringify([{ ...trade, t: '1795530600000' }])],
    ['a negative price', JSON.stringify([{ ...trade, p: -1 }])],
    ['minus zero', '[{"ev":"T","sym":"A","x":-0}]'],
    ['a fractional integer field', JSON.stringify([{ ...trade, x: 4.5 }])],
    ['a string price', JSON.stringify([{ ...trade, p: '1.5' }])],
    ['a notional past 2^53 units', JSON.stringify([{ ...trade, p: 1e9, s: 1e9 }])],
    ['an infinite price', '[{"ev":"T","sym":"A","p":1e999}]'],
    ['a non-object element', '[1]'],
    ['not an array', JSON.stringify(trade)],
    ['invalid JSON', '[{"ev":"T","sym":"A",}]'],
    ['a leading zero', '[{"ev":"T","sym":"A","x":01}]'],
    ['trailing bytes', `${JSON.stringify([trade])}x`],
    ['a truncated frame', JSON.stringify([trade]).slice(0, -3)],
  ])('refuses %s, writing nothing', (_, frame) => {
    expect(viaFastPath(frame)).toBeUndefined();
  });

  it('reserves room for its widest output (9-byte floats from 4 bytes of JSON)', () => {
    const floats = (n: number) => Array.from({ length: n }, () => '5e9').join(',');
    const filler = JSON.stringify({ ev: 'T', sym: 'A', i: 'x'.repeat(900) });
    for (const frame of [
      `[{"ev":"T","sym":"A","c":[${floats(30_000)}]}]`,
      // Output ending just past the staging buffer's first size, with one wide event last.
      `[${Array.from({ length: 284 }, () => filler).join(',')},{"ev":"T","sym":"A","c":[${floats(200)}]}]`,
    ]) {
      const fast = viaFastPath(frame);
      expect(fast).toBeDefined();
      expect(fast).toEqual(viaDecoder(frame));
    }
  });

  it('accepts exactly the ticker characters the decoder accepts', () => {
    for (let code = 0x20; code < 0x7f; code++) {
      const char = String.fromCharCode(code);
      if (char === '"' || char === '\\') continue;
      for (const sym of [char, `A${char}`]) {
        const frame = JSON.stringify([{ ev: 'T', sym, p: 1, s: 1 }]);
        expect(viaFastPath(frame) !== undefined, sym).toBe(isValidSymbol(sym));
      }
    }
  });

  it('never reads a frame differently from the decoder (property)', () => {
    const number = fc.oneof(
      fc.integer({ min: -1e6, max: 1e6 }),
      fc.double({ noNaN: true }),
      fc.constantFrom(0, 64, 127, 128, 255, 256, 65535, 65536, 2 ** 32, 2 ** 53, 1e21, 0.1, 1e-7),
    );
    const value = fc.oneof(
      number,
      fc.constant(null),
      fc.boolean(),
      fc.string({ maxLength: 6 }),
      fc.array(fc.integer({ min: -300, max: 70000 }), { maxLength: 3 }),
      fc.constant(1_795_530_600_123),
    );
    const keys = [
      'sym',
      'p',
      's',
      't',
      'x',
      'i',
      'z',
      'c',
      'q',
      'e',
      'av',
      'op',
      'bp',
      'otc',
      'ds',
      'xx',
      'trfi',
    ];
    const event = fc.record({
      ev: fc.constantFrom('T', 'A', 'AM', 'Q', 'FMV', 'status'),
      sym: fc.oneof(fc.constantFrom('AAPL', 'BRK.B', 'a', ''), fc.string({ maxLength: 4 })),
      fields: fc.dictionary(fc.constantFrom(...keys), value, { maxKeys: 6 }),
    });
    fc.assert(
      fc.property(
        fc.array(event, { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        (events, spaced) => {
          const frame = JSON.stringify(
            events.map(({ ev, sym, fields }) => ({ ev, sym, ...fields })),
            null,
            spaced ? 1 : undefined,
          );
          const fast = viaFastPath(frame);
          if (fast === undefined) return;
          expect(decodeFrame(frame).issues).toEqual([]);
          expect(fast).toEqual(viaDecoder(frame));
        },
      ),
      { numRuns: 3000 },
    );
  });
});

describe('RecordBuffer', () => {
  it('writes event objects as msgpackr would, batch after batch', () => {
    const records = new RecordBuffer('T', 8);
    const events = decodeFrame(
      JSON.stringify([trade, { ...trade, sym: 'X', c: undefined, i: 'é'.repeat(40) }]),
    ).events;
    for (let round = 0; round < 2; round++) {
      for (const event of events) records.writeEvent(event);
      expect(records.count).toBe(2);
      const mine = decodeBatch(records.seal(`t-${round}`, 7)).batch;
      const theirs = decodeBatch(
        encodeBatch({ v: 1, id: `t-${round}`, receivedAtMs: 7, events }),
      ).batch;
      expect(mine).toEqual(theirs);
      expect(records.count).toBe(0);
    }
  });

  it('takes back whole an event it cannot write, and goes on', () => {
    const records = new RecordBuffer('T', 8);
    const [good] = decodeFrame(JSON.stringify([trade])).events;
    records.writeEvent(good!);
    const bad = { ...good!, i: { not: 'a string' } } as unknown as MarketEvent;
    expect(() => records.writeEvent(bad)).toThrow(/cannot write/);
    records.writeEvent(good!);
    expect(records.count).toBe(2);
    const batch = decodeBatch(records.seal('t-1', 1)).batch;
    expect(batch?.events).toEqual(
      decodeBatch(encodeBatch({ v: 1, id: 't-1', receivedAtMs: 1, events: [good!, good!] })).batch
        ?.events,
    );
  });

  it('refuses an event of another type', () => {
    expect(() => new RecordBuffer('A').writeEvent({ ev: 'T', sym: 'A' })).toThrow(
      /a T in a A batch/,
    );
  });
});
