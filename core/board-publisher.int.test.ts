import { Redis } from 'ioredis';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { useIsolation } from '../testing/harness.ts';
import { createBoardPublisher, type BoardUpdate } from './board-publisher.ts';
import { createBoardStore } from './board-store.ts';
import { DEFAULTS } from './config.ts';

const DATE = '2026-11-24';
const OPEN = Date.parse('2026-11-24T14:30:00Z');

describe('board publisher', () => {
  const iso = useIsolation();

  it('publishes changed boards only, once per interval across publishers', async () => {
    const { redis, names, redisUrl } = iso();
    const store = createBoardStore({ redis, names, board: DEFAULTS.board });
    const subscriber = new Redis(redisUrl);
    const updates: BoardUpdate[] = [];
    await subscriber.subscribe(names.boardUpdates(DATE));
    subscriber.on('message', (_channel, message: string) =>
      updates.push(JSON.parse(message) as BoardUpdate),
    );
    const log = pino({ level: 'silent' });
    const make = () =>
      createBoardPublisher({ redis, store, names, log, date: () => DATE, intervalMs: 300 });
    const [a, b] = [make(), make()];
    try {
      await store.applyBatch({
        v: 1,
        id: 'x1',
        receivedAtMs: OPEN,
        events: [{ ev: 'A', sym: 'AAPL', s: OPEN, e: OPEN + 1000, av: 10, c: 5 }],
      });
      const [first, second] = await Promise.all([a.tick(), b.tick()]);
      // The first round of a date announces every board, empty ones included.
      expect([...first, ...second].sort()).toEqual([
        'gainers',
        'gappers',
        'momentum',
        'trades',
        'volume',
      ]);
      expect(a.stats.lockHeldElsewhere + b.stats.lockHeldElsewhere).toBe(1);

      await new Promise((r) => setTimeout(r, 350));
      expect(await a.tick()).toEqual([]);
      expect(a.stats.unchanged).toBe(1);

      await store.applyBatch({
        v: 1,
        id: 'x2',
        receivedAtMs: OPEN,
        events: [{ ev: 'T', sym: 'AAPL', t: OPEN + 5, p: 5, s: 1 }],
      });
      await new Promise((r) => setTimeout(r, 350));
      expect(await b.tick()).toEqual(['trades']);
      await expect.poll(() => updates.length).toBe(6);
      expect(updates.map((u) => [u.board, u.rows.map((r) => r.sym)])).toEqual([
        ['gappers', []],
        ['gainers', []],
        ['volume', ['AAPL']],
        ['trades', []],
        ['momentum', []],
        ['trades', ['AAPL']],
      ]);
      expect(updates[5]!.version).toBeGreaterThan(updates[0]!.version);
    } finally {
      await Promise.all([a.close(), b.close()]);
      subscriber.disconnect();
    }
  });
});
