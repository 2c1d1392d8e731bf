import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  checkBoardEvent,
  createDecodeCounts,
  decodeFrame,
  parseMessage,
  parseTimestampMs,
} from './decode.ts';
import type { AggregateEvent, LuldEvent, TradeEvent } from './events.ts';

interface Spec {
  paths: Record<
    string,
    { get: { responses: { '200': { content: { 'application/json': { example: unknown } } } } } }
  >;
}
const spec = JSON.parse(
  readFileSync(new URL('../fixtures/massive/websocket-spec.json', import.meta.url), 'utf8'),
) as Spec;
const example = (path: string): Record<string, unknown> =>
  spec.paths[path]!.get.responses['200'].content['application/json'].example as Record<
    string,
    unknown
  >;

describe('decodeFrame', () => {
  it('decodes every stocks example of the Massive spec in one mixed frame', () => {
    const paths = [
      '/stocks/T',
      '/stocks/Q',
      '/stocks/A',
      '/stocks/AM',
      '/stocks/LULD',
      '/stocks/NOI',
      '/business/stocks/FMV',
    ];
    const frame = JSON.stringify([
      { ev: 'status', status: 'connected', message: 'Connected Successfully' },
      ...paths.map(example),
    ]);
    const out = decodeFrame(frame);
    expect(out.issues).toEqual([]);
    expect(out.statuses).toEqual([
      { ev: 'status', status: 'connected', message: 'Connected Successfully' },
    ]);
    expect(out.events.map((e) => [e.ev, e.sym])).toEqual([
      ['T', 'MSFT'],
      ['Q', 'MSFT'],
      ['A', 'SPCE'],
      ['AM', 'GTE'],
      ['LULD', 'MSFT'],
      ['NOI', 'NTEST.Q'],
      ['FMV', 'AAPL'],
    ]);
    expect(out.events[0]).toEqual({
      ev: 'T',
      sym: 'MSFT',
      x: 4,
      i: '12345',
      z: 3,
      p: 114.125,
      s: 100,
      c: [0, 12],
      t: 1536036818784,
      q: 3681328,
    });
    expect(out.events[2]).toMatchObject({
      op: 25.66,
      av: 8642007,
      s: 1610144868000,
      e: 1610144869000,
    });
  });

  it('normalises LULD and NOI tickers from T to sym and their ns/µs timestamps to ms', () => {
    const out = decodeFrame(
      '[{"ev":"LULD","T":"MSFT","h":218.96,"l":198.11,"i":[21],"z":3,"t":1601316752683746123,"q":290317},' +
        '{"ev":"NOI","T":"NTEST.Q","t":1601318039223013600,"at":930,"a":"M"},' +
        '{"ev":"LULD","T":"AAPL","t":1601316752683746}]',
    );
    expect(out.issues).toEqual([]);
    const [luld, noi, micro] = out.events as [LuldEvent, LuldEvent, LuldEvent];
    expect(luld.sym).toBe('MSFT');
    expect(luld).not.toHaveProperty('T');
    expect(luld.t).toBeCloseTo(1601316752683.746, 3);
    expect(noi.t).toBeCloseTo(1601318039223.014, 3);
    expect(micro.t).toBeCloseTo(1601316752683.746, 3);
  });

  it('fills sizes and volumes from decimal strings (ds, dv, dav)', () => {
    const out = decodeFrame(
      '[{"ev":"T","sym":"AAPL","p":190.5,"s":0,"ds":"0.25","t":1700000000000},' +
        '{"ev":"AM","sym":"AAPL","v":1,"dv":"1.5","dav":"1000.75","s":1700000000000,"e":1700000060000}]',
    );
    expect(out.issues).toEqual([]);
    expect((out.events[0] as TradeEvent).s).toBe(0.25);
    expect(out.events[1] as AggregateEvent).toMatchObject({ v: 1.5, av: 1000.75 });
  });

  it('ignores unknown fields and treats null as missing', () => {
    const out = decodeFrame('[{"ev":"T","sym":"BRK.B","p":400.1,"new_field":{"x":1},"c":null}]');
    expect(out.events).toEqual([{ ev: 'T', sym: 'BRK.B', p: 400.1 }]);
  });

  it('accepts a frame that is only statuses, and unknown statuses as strings', () => {
    const out = decodeFrame(
      '[{"ev":"status","status":"success","message":"subscribed to: A.*"},{"ev":"status","status":"brand_new"}]',
    );
    expect(out.statuses.map((s) => s.status)).toEqual(['success', 'brand_new']);
  });

  it('drops bad events by reason and keeps the good ones of the same frame', () => {
    const counts = createDecodeCounts();
    const out = decodeFrame(
      JSON.stringify([
        { ev: 'T', sym: 'GOOD', p: 1 },
        42,
        { sym: 'X' },
        { ev: 'XT', pair: 'BTC-USD' },
        { ev: 'T', p: 1 },
        { ev: 'T', sym: 'A:B' },
        { ev: 'T', sym: 'X', p: '12.5' },
        { ev: 'T', sym: 'X', p: -1 },
        { ev: 'T', sym: 'X', t: 1234 },
        { ev: 'T', sym: 'X', ds: 'abc' },
        { ev: 'T', sym: 'X', c: [1, 'a'] },
        { ev: 'status' },
      ]),
      counts,
    );
    expect(out.events).toEqual([{ ev: 'T', sym: 'GOOD', p: 1 }]);
    expect(out.issues.map((i) => [i.index, i.reason])).toEqual([
      [1, 'event_not_object'],
      [2, 'missing_ev'],
      [3, 'unknown_ev'],
      [4, 'missing_symbol'],
      [5, 'invalid_symbol'],
      [6, 'invalid_field'],
      [7, 'invalid_field'],
      [8, 'invalid_timestamp'],
      [9, 'invalid_field'],
      [10, 'invalid_field'],
      [11, 'invalid_status'],
    ]);
    expect(counts.invalid_field).toBe(4);
    expect(counts.unknown_ev).toBe(1);
    expect(out.issues[5]!.detail).toBe('T.p is not a valid price');
  });

  it('drops a trade whose notional is past what the boards sum exactly', () => {
    const counts = createDecodeCounts();
    const out = decodeFrame(
      JSON.stringify([
        // $9 × 10^11 in size 1 fits; $10^12 does not, nor the same size given as a decimal string.
        { ev: 'T', sym: 'BIG', p: 9e11, s: 1 },
        { ev: 'T', sym: 'HUGE', p: 1e12, s: 1 },
        { ev: 'T', sym: 'HUGE', p: 2e6, ds: '500000' },
        { ev: 'T', sym: 'NOSIZE', p: 1e20 },
      ]),
      counts,
    );
    expect(out.events.map((e) => e.sym)).toEqual(['BIG', 'NOSIZE']);
    expect(out.issues.map((i) => [i.index, i.reason, i.detail])).toEqual([
      [1, 'invalid_field', 'T.p × T.s is too large to sum exactly'],
      [2, 'invalid_field', 'T.p × T.s is too large to sum exactly'],
    ]);
    expect(checkBoardEvent({ ev: 'T', sym: 'HUGE', p: 1e12, s: 1 })).toMatchObject({
      reason: 'invalid_field',
    });
  });

  it('drops a decimal-string size too long to be a finite number', () => {
    const out = decodeFrame(JSON.stringify([{ ev: 'T', sym: 'X', p: 0, ds: '9'.repeat(400) }]));
    expect(out.events).toEqual([]);
    expect(out.issues.map((i) => [i.reason, i.detail])).toEqual([
      ['invalid_field', 'T.ds is not a finite decimal string'],
    ]);
  });

  it('reports a frame that is not JSON or not an array without throwing', () => {
    const counts = createDecodeCounts();
    expect(decodeFrame('[{"ev":"T",', counts).issues[0]!.reason).toBe('invalid_json');
    expect(decodeFrame('{"ev":"T","sym":"X"}', counts).issues[0]!.reason).toBe('frame_not_array');
    expect(decodeFrame(Buffer.from('null'), counts).issues[0]!.detail).toBe('frame is null');
    expect(counts).toMatchObject({ invalid_json: 1, frame_not_array: 2 });
  });

  it('is the identity on an already normalised event', () => {
    const once = decodeFrame('[{"ev":"LULD","T":"MSFT","h":2,"l":1,"t":1601316752683746123}]')
      .events[0];
    expect(parseMessage(once)).toEqual(once);
  });
});

describe('checkBoardEvent', () => {
  const trade = { ev: 'T', sym: 'BRK.B', x: 4, p: 190.25, s: 100, t: 1700000000000.5 };
  const bar = { ev: 'AM', sym: 'X', av: 10, c: 1.5, op: 1.25, s: 1700000000000, e: 1700000060000 };

  it('returns the event itself when what the boards read is sound', () => {
    for (const event of [trade, bar, { ...bar, ev: 'A' }]) {
      const same = { ...event };
      expect(checkBoardEvent(same)).toBe(same);
      expect(same).toEqual(event);
    }
  });

  it('reads a null field as absent, and leaves the fields the boards do not read unchecked', () => {
    const event = { ...trade, p: null, x: 'not checked', c: null };
    const checked = checkBoardEvent(event) as unknown as Record<string, unknown>;
    expect(checked).toBe(event);
    expect(checked).toMatchObject({ p: undefined, x: 'not checked', c: undefined });
    expect(Object.values(checked)).not.toContain(null);
  });

  it('rejects bad symbols and bad board fields by reason', () => {
    const reasons = [
      { ...trade, sym: undefined },
      { ...trade, sym: 'A:B' },
      { ...trade, p: -1 },
      { ...trade, s: '100' },
      { ...trade, t: 1700000000000500 },
      { ...bar, c: Infinity },
      { ...bar, op: 'open' },
      { ...bar, e: '1700000060000' },
      { ...bar, s: 1700000000 },
      42,
      { sym: 'X' },
    ].map((event) => (checkBoardEvent(event) as { reason?: string }).reason);
    expect(reasons).toEqual([
      'missing_symbol',
      'invalid_symbol',
      'invalid_field',
      'invalid_field',
      'invalid_timestamp',
      'invalid_field',
      'invalid_field',
      'invalid_timestamp',
      'invalid_timestamp',
      'event_not_object',
      'missing_ev',
    ]);
  });

  it('gives other event types the full parse', () => {
    const quote = { ev: 'Q', sym: 'X', bp: 1, ap: 1.01, t: 1700000000000 };
    expect(checkBoardEvent(quote)).toEqual(parseMessage(quote));
    expect(checkBoardEvent({ ...quote, bp: -1 })).toMatchObject({ reason: 'invalid_field' });
  });
});

describe('parseTimestampMs', () => {
  it('detects units by digit count', () => {
    expect(parseTimestampMs(1536036818784)).toBe(1536036818784);
    expect(parseTimestampMs(1536036818784123)).toBe(1536036818784.123);
    expect(parseTimestampMs('1536036818784123456')).toBeCloseTo(1536036818784.1235, 3);
    expect(parseTimestampMs(1536036818)).toBeUndefined();
    expect(parseTimestampMs(15360368187841)).toBeUndefined();
    expect(parseTimestampMs(-1536036818784)).toBeUndefined();
    expect(parseTimestampMs('soon')).toBeUndefined();
    expect(parseTimestampMs(Number.NaN)).toBeUndefined();
  });
});
