import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import {
  fetchPrevCloses,
  newYorkTimeToMs,
  nextTradingDate,
  parsePrevCloses,
  tradingDateOf,
  tradingDay,
  type BoardStore,
  type PrevCloses,
} from '../../core/index.ts';

/** Where previous closes come from. */
export type PrevCloseSource =
  | { kind: 'rest'; apiKey: string; baseUrl: string }
  | { kind: 'file'; path: string; date?: string }
  | { kind: 'none' };

/** The trading date whose session is in progress or comes next at `ms`. */
export function sessionDateAt(ms: number): string {
  const today = tradingDateOf(ms);
  const day = tradingDay(today);
  return day !== undefined && ms < day.postCloseMs ? today : nextTradingDate(today);
}

/** Loads previous closes for `date` from `source` into the store; returns how many were stored. */
export async function loadPrevCloses(
  source: PrevCloseSource,
  date: string,
  store: BoardStore,
  log: Logger,
): Promise<number> {
  if (source.kind === 'none') return 0;
  let closes: PrevCloses;
  if (source.kind === 'file') {
    closes = parsePrevCloses(
      JSON.parse(await readFile(source.path, 'utf8')) as unknown,
      source.date ?? date,
      source.path,
    );
  } else {
    closes = await fetchPrevCloses(date, { apiKey: source.apiKey, baseUrl: source.baseUrl });
  }
  const stored = await store.setPrevCloses(closes.date, closes.closes);
  log.info(
    { date: closes.date, source: closes.source, stored, skipped: closes.skipped },
    'previous closes loaded',
  );
  return stored;
}

/**
 * Loads previous closes for the current (or next) session now, then again at 03:30 ET before
 * each following session, off the hot path. Failures are logged and retried every 5 minutes.
 * Returns a function that cancels the schedule.
 */
export function schedulePrevCloses(
  source: PrevCloseSource,
  store: BoardStore,
  log: Logger,
  now = Date.now,
): () => void {
  if (source.kind === 'none') return () => undefined;
  let timer: NodeJS.Timeout | undefined;
  let cancelled = false;
  const run = async (date: string): Promise<void> => {
    try {
      await loadPrevCloses(source, date, store, log);
      const next = nextTradingDate(date);
      const at = newYorkTimeToMs(next, '03:30');
      arm(() => void run(next), Math.max(0, at - now()));
    } catch (error) {
      log.warn({ err: error, date }, 'loading previous closes failed; retrying in 5 minutes');
      arm(() => void run(date), 300_000);
    }
  };
  const arm = (work: () => void, delayMs: number): void => {
    if (cancelled) return;
    // setTimeout holds at most ~24.8 days; the schedule is never that far ahead.
    timer = setTimeout(work, Math.min(delayMs, 2 ** 31 - 1));
    timer.unref();
  };
  void run(sessionDateAt(now()));
  return () => {
    cancelled = true;
    if (timer !== undefined) clearTimeout(timer);
  };
}
