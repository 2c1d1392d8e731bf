import { describe, expect, it } from 'vitest';
import { useIsolation } from '../testing/harness.ts';
import type { EventBatch } from './batch.ts';
import { createBoardStore, type BoardStore, type LedgerBatch } from './board-store.ts';
import { DEFAULTS } from './config.ts';
import type { MarketEvent } from './events.ts';

const DATE = '2026-11-24';
const NEXT = '2026-11-25';
const OPEN = Date.parse('2026-11-24T14:30:00Z');
const DAY_MS = 86_400_000;
const trade = (sym: string, t: number): MarketEvent => ({
  ev: 'T',
  sym,
  t: OPEN + t,
  p: 10,
  s: 100,
});
const undated = (sym: string): MarketEvent => ({ ev: 'T', sym, p: 10, s: 100 });
const batch = (id: string, events: MarketEvent[], receivedAtMs = OPEN): LedgerBatch => ({
  v: 1,
  id,
  receivedAtMs,
  events,
});

describe('ledger in Redis', () => {
  const iso = useIsolation();
  const store = (): BoardStore =>
    createBoardStore({ redis: iso().redis, names: iso().names, board: DEFAULTS.board });

  it('accounts every batch applied exactly once, redeliveries and resent copies not again', async () => {
    const boards = store();
    const a = batch('a', [trade('AAPL', 1), trade('MSFT', 2)]);
    const b = { ...batch('b', [trade('AAPL', 3)]), malformed: 2 };
    const first = await boards.applyBatches([a, b]);
    expect(first).toMatchObject({ appliedEvents: 3, duplicateEvents: 0 });
    // A redelivered group with one new batch: only the new one counts.
    const again = await boards.applyBatches([a, batch('c', [trade('NVDA', 4)])]);
    expect(again).toMatchObject({ appliedEvents: 1, duplicateEvents: 2 });
    expect(await boards.ledger(DATE)).toEqual({
      applied: 4,
      dropped: { 'analyzer/malformed': 2 },
    });
  });

  it('accounts a batch spanning two dates once, on the date of its first dated event', async () => {
    const boards = store();
    const spanning = batch('s', [trade('AAPL', 1), trade('AAPL', DAY_MS + 1)]);
    expect(await boards.applyBatches([spanning])).toMatchObject({ appliedEvents: 2 });
    expect((await boards.ledger(DATE)).applied).toBe(2);
    expect((await boards.ledger(NEXT)).applied).toBe(0);
    // The part on the second date alone, redelivered: nothing more is accounted.
    expect(await boards.applyBatches([spanning])).toMatchObject({ appliedEvents: 0 });
    expect((await boards.ledger(DATE)).applied).toBe(2);
  });

  it('accounts a batch with no dated event on its receive date, though it moves no board', async () => {
    const boards = store();
    const result = await boards.applyBatches([batch('u', [undated('AAPL'), undated('MSFT')])]);
    expect(result).toMatchObject({ appliedEvents: 2, dates: [] });
    expect((await boards.ledger(DATE)).applied).toBe(2);
    expect(await boards.latestDate()).toBeUndefined();
  });

  it('counts a dead-lettered batch once, and not at all when a copy of it was applied', async () => {
    const boards = store();
    const lost = batch('lost', [trade('AAPL', 1), trade('AAPL', 2)]);
    expect(await boards.countDeadLetter(lost, 'expired', 2)).toBe(true);
    expect(await boards.countDeadLetter(lost, 'expired', 2)).toBe(false);
    const applied = batch('applied', [trade('MSFT', 1)]);
    await boards.applyBatches([applied]);
    expect(await boards.countDeadLetter(applied, 'maxlen', 1)).toBe(false);
    expect(await boards.ledger(DATE)).toEqual({ applied: 1, dropped: { 'broker/expired': 2 } });
  });

  it('takes a dead letter back when another copy of the batch is applied afterwards', async () => {
    const boards = store();
    const twice: EventBatch = batch('twice', [
      trade('AAPL', 1),
      trade('MSFT', 1),
      trade('NVDA', 1),
    ]);
    expect(await boards.countDeadLetter(twice, 'expired', 3)).toBe(true);
    expect((await boards.ledger(DATE)).dropped).toEqual({ 'broker/expired': 3 });
    await boards.applyBatches([twice]);
    expect(await boards.ledger(DATE)).toEqual({ applied: 3, dropped: {} });
    // It cannot be counted dead again now.
    expect(await boards.countDeadLetter(twice, 'expired', 3)).toBe(false);
  });
});
