import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import {
  DEFAULTS,
  createBoardPublisher,
  createBoardStore,
  createRandom,
  type AggregateEvent,
  type MarketEvent,
  type Names,
} from '../core/index.ts';

/** Options of {@link createBoardChurn}. */
export interface BoardChurnOptions {
  redis: Redis;
  names: Names;
  log: Logger;
  /** Symbols whose bars change every round. @default 300 */
  symbols?: number;
  /** Symbols that trade every round (the trades board moves). @default 60 */
  tradingSymbols?: number;
  /** A round (apply a batch, publish the boards) every this long. @default 250 */
  intervalMs?: number;
  seed?: number;
}

/** Keeps the gainers, volume and trades boards changing, as the analyzers would. */
export interface BoardChurn {
  /** Applies the first round (which sets the date) and starts the rounds; idempotent. */
  start(): Promise<void>;
  close(): Promise<void>;
  readonly stats: { rounds: number; published: number; lateRounds: number; errors: number };
}

/**
 * Every round: one aggregate per symbol (more volume, a price step, an official open) and a few
 * trades, applied to the boards in Redis, then one board publication, like an analyzer's.
 */
export function createBoardChurn(options: BoardChurnOptions): BoardChurn {
  const { redis, names, log } = options;
  const intervalMs = options.intervalMs ?? 250;
  const random = createRandom(options.seed ?? 7);
  const symbols = Array.from({ length: options.symbols ?? 300 }, (_, i) => ({
    sym: `F${i.toString(36).toUpperCase()}`,
    open: 10 + random() * 200,
    price: 0,
    av: 0,
  }));
  for (const s of symbols) s.price = s.open;
  const store = createBoardStore({ redis, names, board: DEFAULTS.board });
  let date: string | undefined;
  // The publisher's lock lives `intervalMs`; a timer firing a hair early would find it still held
  // and skip a round, so the lock is a little shorter than the round.
  const publisher = createBoardPublisher({
    redis,
    store,
    names,
    log,
    date: () => date,
    intervalMs: Math.max(1, intervalMs - 20),
  });
  const stats = { rounds: 0, published: 0, lateRounds: 0, errors: 0 };
  let batchId = 0;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let started: Promise<void> | undefined;
  let closing = false;

  const round = async (): Promise<void> => {
    const t = Date.now();
    const events: MarketEvent[] = [];
    for (const s of symbols) {
      s.av += 100 + Math.floor(random() * 900);
      s.price = Math.max(1, s.price * (1 + (random() - 0.5) * 0.02));
      const c = Math.round(s.price * 100) / 100;
      const bar: AggregateEvent = { ev: 'A', sym: s.sym, s: t - 1000, e: t, av: s.av, c, v: 100 };
      bar.op = Math.round(s.open * 100) / 100;
      events.push(bar);
    }
    const trading = options.tradingSymbols ?? 60;
    for (let k = 0; k < trading; k++) {
      const s = symbols[Math.floor(random() ** 2 * symbols.length)]!;
      events.push({ ev: 'T', sym: s.sym, t: t + (k % 10), p: s.price, s: 100 });
    }
    const result = await store.applyBatch({
      v: 1,
      id: `churn-${++batchId}`,
      receivedAtMs: t,
      events,
    });
    date = result.dates[0] ?? date;
    stats.published += (await publisher.tick()).length;
    stats.rounds++;
  };

  const schedule = (due: number): void => {
    if (closing) return;
    let next = due + intervalMs;
    const wait = next - performance.now();
    if (wait < 0) {
      stats.lateRounds++;
      next = performance.now();
    }
    timer = setTimeout(
      () => {
        running = round()
          .catch((error: unknown) => {
            stats.errors++;
            log.warn({ err: error }, 'board churn round failed');
          })
          .finally(() => schedule(next));
      },
      Math.max(0, wait),
    );
  };

  return {
    start: () =>
      (started ??= (async () => {
        await round();
        schedule(performance.now());
      })()),
    async close() {
      closing = true;
      if (timer !== undefined) clearTimeout(timer);
      await running;
      await publisher.close();
    },
    stats,
  };
}
