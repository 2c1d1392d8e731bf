import { describe, expect, it } from 'vitest';
import { useIsolation } from '../testing/harness.ts';
import type { EventBatch } from './batch.ts';
import { computeBoards } from './board-oracle.ts';
import { createBoardStore, type BoardStore } from './board-store.ts';
import { DEFAULTS } from './config.ts';
import type { AggregateEvent, MarketEvent, TradeEvent } from './events.ts';
import { createRandom } from './random.ts';

const DATE = '2026-11-24';
const OPEN = Date.parse('2026-11-24T14:30:00Z'); // 09:30 ET
const options = { ...DEFAULTS.board };
const bar = (sym: string, e: number, av: number, c: number, op?: number): AggregateEvent => ({
  ev: 'A',
  sym,
  s: OPEN + e - 1000,
  e: OPEN + e,
  av,
  c,
  v: 1,
  ...(op === undefined ? {} : { op }),
});
const trade = (sym: string, t: number, p: number, s: number): TradeEvent => ({
  ev: 'T',
  sym,
  t: OPEN + t,
  p,
  s,
});
let batchSeq = 0;
const batch = (events: MarketEvent[], id = `b${++batchSeq}`): EventBatch => ({
  v: 1,
  id,
  receivedAtMs: OPEN,
  events,
});

describe('board store', () => {
  const iso = useIsolation();
  const store = (): BoardStore =>
    createBoardStore({ redis: iso().redis, names: iso().names, board: options });

  it('ranks the hand-computed boards: out-of-order and corrected bars, late open, dotted symbols, missing previous close', async () => {
    const boards = store();
    await boards.setPrevCloses(
      DATE,
      new Map([
        ['AAPL', 100],
        ['MSFT', 50],
        ['BRK.B', 400],
        ['NVDA', 200],
      ]),
    );
    // AAPL: the later bar arrives first; the earlier one must not win back.
    await boards.applyBatch(batch([bar('AAPL', 2000, 300, 101, 100.5)]));
    await boards.applyBatch(batch([bar('AAPL', 1000, 200, 100)]));
    // MSFT: a corrected bar for the same second (larger av) supersedes; a smaller av does not.
    await boards.applyBatch(
      batch([
        bar('MSFT', 1000, 500, 50, 49),
        bar('MSFT', 1000, 550, 50.5),
        bar('MSFT', 1000, 540, 99),
      ]),
    );
    // NVDA: no official open until a later bar carries it.
    await boards.applyBatch(batch([bar('NVDA', 1000, 50, 190)]));
    const beforeOpen = await boards.readBoards(DATE);
    expect(beforeOpen.boards.gainers.map((r) => r.sym)).toEqual(['MSFT', 'AAPL']);
    await boards.applyBatch(
      batch([
        bar('NVDA', 3000, 80, 190, 180),
        bar('BRK.B', 1000, 10, 410),
        bar('TSLA', 1000, 900, 250, 240),
      ]),
    );

    const { boards: view } = await boards.readBoards(DATE);
    expect(view.volume).toEqual([
      { sym: 'TSLA', score: 900, price: 250, volume: 900 },
      { sym: 'MSFT', score: 550, price: 50.5, volume: 550 },
      { sym: 'AAPL', score: 300, price: 101, volume: 300 },
      { sym: 'NVDA', score: 80, price: 190, volume: 80 },
      { sym: 'BRK.B', score: 10, price: 410, volume: 10 },
    ]);
    expect(view.gappers.map((r) => [r.sym, r.score])).toEqual([
      ['BRK.B', ((410 - 400) / 400) * 100],
      ['AAPL', ((101 - 100) / 100) * 100],
      ['MSFT', ((50.5 - 50) / 50) * 100],
      ['NVDA', ((190 - 200) / 200) * 100],
    ]);
    expect(view.gainers.map((r) => [r.sym, r.score])).toEqual([
      ['NVDA', ((190 - 180) / 180) * 100],
      ['TSLA', ((250 - 240) / 240) * 100],
      ['MSFT', ((50.5 - 49) / 49) * 100],
      ['AAPL', ((101 - 100.5) / 100.5) * 100],
    ]);
    expect(await boards.missingPrevCloses(DATE)).toBe(1);
    // A previous close loaded late ranks the symbol at once.
    await boards.setPrevCloses(DATE, new Map([['TSLA', 200]]));
    expect((await boards.readBoards(DATE)).boards.gappers[0]).toEqual({
      sym: 'TSLA',
      score: 25,
      price: 250,
      volume: 900,
    });
    expect(await boards.missingPrevCloses(DATE)).toBe(0);
  });

  it('counts trades in the sliding window and ranks momentum from the day so far', async () => {
    const boards = store();
    const aapl = [
      trade('AAPL', -400_000, 100, 10),
      trade('AAPL', 1000, 101, 20),
      trade('AAPL', 60_000, 101, 10),
    ];
    const msft = [trade('MSFT', 30_000, 50, 100), trade('MSFT', 59_000, 50, 100)];
    const nvda = [trade('NVDA', -1000, 190, 5)];
    await boards.applyBatch(batch([aapl[2]!, msft[0]!]));
    // Arrives after the window moved past it: counted for the day, never in the window.
    await boards.applyBatch(batch([...nvda, aapl[0]!]));
    const repeated = batch([aapl[1]!, msft[1]!]);
    await boards.applyBatch(repeated);
    const again = await boards.applyBatch(repeated);
    expect(again).toMatchObject({ duplicates: 1, applied: 0 });
    expect(await boards.applied(DATE)).toEqual({ aggregates: 0, trades: 6 });
    // Computed on read, nothing stored; then stored by a refresh: the same rows.
    const fresh = await boards.readBoards(DATE, 20, { freshMomentum: true });
    expect(await iso().redis.exists(iso().names.board(DATE, 'momentum'))).toBe(0);
    await boards.refreshMomentum(DATE);
    expect(fresh).toEqual(await boards.readBoards(DATE));

    const { boards: view } = await boards.readBoards(DATE);
    expect(view.trades.map((r) => [r.sym, r.score])).toEqual([
      ['AAPL', 2],
      ['MSFT', 2],
    ]);
    // AAPL: N_w = 101·20 + 101·10, N_d = N_w + 100·10, T_d = 460 s; MSFT has 30 s of history (< 300).
    const nw = (101 * 20 + 101 * 10) * 10_000;
    const nd = nw + 100 * 10 * 10_000;
    expect(view.momentum).toEqual([
      { sym: 'AAPL', score: nw / ((nd * 60) / 460), price: null, volume: null },
    ]);
    expect(view.momentum[0]!.score).toBeCloseTo(5.7643, 4);
  });

  it('expires trades as the window end moves and drops symbols that fall out', async () => {
    const boards = store();
    await boards.applyBatch(batch([trade('AAPL', 0, 10, 1), trade('MSFT', 1, 10, 1)]));
    await boards.applyBatch(batch([trade('MSFT', 60_000, 10, 1)]));
    const { boards: view } = await boards.readBoards(DATE);
    expect(view.trades.map((r) => [r.sym, r.score])).toEqual([['MSFT', 2]]);
    await boards.applyBatch(batch([trade('MSFT', 120_001, 10, 1)]));
    expect((await boards.readBoards(DATE)).boards.trades).toEqual([
      { sym: 'MSFT', score: 1, price: null, volume: null },
    ]);
  });

  it('applies a group touching 10,000 symbols at once, and ignores an official open of 0', async () => {
    const boards = store();
    const wide = Array.from({ length: 20 }, (_, b) =>
      batch(Array.from({ length: 500 }, (_, n) => bar(`W${b * 500 + n}`, 1000, 1 + n, 10))),
    );
    const result = await boards.applyBatches(wide);
    expect(result).toMatchObject({ applied: 20, duplicates: 0, aggregates: 10_000 });
    expect((await boards.readBoards(DATE, 500)).boards.volume).toHaveLength(500);
    expect(await iso().redis.zcard(iso().names.board(DATE, 'volume'))).toBe(10_000);

    await boards.applyBatches([batch([bar('OPN', 1000, 1, 12, 10), bar('OPN', 2000, 2, 12, 0)])]);
    expect((await boards.readBoards(DATE)).boards.gainers).toEqual([
      { sym: 'OPN', score: 20, price: 12, volume: 2 },
    ]);
  });

  it('applies a group of more batches than one Lua unpack takes, each exactly once', async () => {
    const boards = store();
    const many = Array.from({ length: 9000 }, (_, n) => batch([trade('MANY', n, 1, 1)]));
    expect(await boards.applyBatches(many)).toMatchObject({ applied: 9000, trades: 9000 });
    const again = await boards.applyBatches([many[8999]!, batch([trade('MANY', 9000, 1, 1)])]);
    expect(again).toMatchObject({ duplicates: 1, applied: 1, trades: 1 });
    expect(await boards.applied(DATE)).toEqual({ aggregates: 0, trades: 9001 });
  });

  it('ends with the offline oracle boards whatever the batch order, concurrency and redeliveries', async () => {
    for (const seed of [1, 2, 3]) {
      const random = createRandom(seed);
      const namespace = `${iso().namespace}-s${seed}`;
      const names = (await import('./names.ts')).createNames({ namespace });
      const boards = createBoardStore({
        redis: iso().redis,
        names,
        board: { ...options, top: 500 },
      });
      const symbols = ['AAPL', 'MSFT', 'BRK.B', 'NVDA', 'TSLA', 'AMD', 'F', 'GME'];
      const events: MarketEvent[] = [];
      for (let n = 0; n < 3000; n++) {
        const sym = symbols[Math.floor(random() * symbols.length)]!;
        const at = Math.floor(random() * 900_000) - 450_000;
        if (random() < 0.3) {
          const e = at - (at % 1000);
          events.push(
            bar(
              sym,
              e,
              1000 + Math.floor(random() * 50) + Math.max(0, e),
              Math.round(50 + random() * 100) / 2,
              random() < 0.2 ? 75 + Math.floor(random() * 10) : undefined,
            ),
          );
        } else {
          events.push(
            trade(
              sym,
              at,
              Math.round(1000 + random() * 9000) / 100,
              1 + Math.floor(random() * 300),
            ),
          );
        }
      }
      const prev = new Map(symbols.slice(0, 6).map((s, i) => [s, 60 + i * 7]));
      const batches: EventBatch[] = [];
      for (let i = 0; i < events.length; i += 40) batches.push(batch(events.slice(i, i + 40)));
      const order = [...batches, ...batches.filter(() => random() < 0.2)].sort(
        () => random() - 0.5,
      );
      await boards.setPrevCloses(DATE, prev);
      // Singles and groups, two at a time: redeliveries meet their originals inside a group and
      // across groups (the script refuses those, and the group is applied again without them).
      let duplicates = 0;
      for (let i = 0; i < order.length; i += 12) {
        const results = await Promise.all([
          boards.applyBatches(order.slice(i, i + 7)),
          ...order.slice(i + 7, i + 12).map((b) => boards.applyBatch(b)),
        ]);
        duplicates += results.reduce((sum, r) => sum + r.duplicates, 0);
      }
      expect(duplicates).toBe(order.length - batches.length);
      expect(await boards.applied(DATE)).toEqual({
        aggregates: events.filter((e) => e.ev === 'A').length,
        trades: events.filter((e) => e.ev === 'T').length,
      });
      await boards.refreshMomentum(DATE);
      const live = await boards.readBoards(DATE, 500);
      const oracle = computeBoards(events, DATE, prev, { ...options, top: 500 });
      expect(live).toEqual(oracle);
      expect(await boards.readBoards(DATE, 500, { freshMomentum: true })).toEqual(oracle);
      expect(oracle.boards.momentum.length).toBeGreaterThan(0);
      expect(oracle.boards.gainers.length).toBeGreaterThan(0);
    }
  });
});
