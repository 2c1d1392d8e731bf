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

/**
 * Reads the previous closes serving `date` from `source` (a file's own `date`, when given, wins);
 * `undefined` for `none`. Throws when the file or the REST API fails.
 */
export async function readPrevCloses(
  source: PrevCloseSource,
  date: string,
): Promise<PrevCloses | undefined> {
  if (source.kind === 'none') return undefined;
  if (source.kind === 'file') {
    return parsePrevCloses(
      JSON.parse(await readFile(source.path, 'utf8')) as unknown,
      source.date ?? date,
      source.path,
    );
  }
  return fetchPrevCloses(date, { apiKey: source.apiKey, baseUrl: source.baseUrl });
}

/** Stores previous closes read before and logs how many; returns how many were stored. */
export async function storePrevCloses(
  closes: PrevCloses,
  store: Pick<BoardStore, 'setPrevCloses'>,
  log: Logger,
  why = 'loaded',
): Promise<number> {
  const stored = await store.setPrevCloses(closes.date, closes.closes);
  log.info(
    { date: closes.date, source: closes.source, stored, skipped: closes.skipped },
    `previous closes ${why}`,
  );
  return stored;
}

/**
 * Loads previous closes for `date` from `source` into the store; returns what was stored
 * (`undefined` for `none`).
 */
export async function loadPrevCloses(
  source: PrevCloseSource,
  date: string,
  store: Pick<BoardStore, 'setPrevCloses'>,
  log: Logger,
): Promise<PrevCloses | undefined> {
  const closes = await readPrevCloses(source, date);
  if (closes !== undefined) await storePrevCloses(closes, store, log);
  return closes;
}

/** The schedule {@link schedulePrevCloses} runs. */
export interface PrevCloseSchedule {
  /** Stops the schedule. */
  cancel(): void;
  /**
   * Stores again the closes loaded last (from memory: no request), or, when none has loaded yet,
   * loads them for the current session now: what a state loss in Redis calls. Resolves with how
   * many were stored; rejects when loading fails.
   */
  reload(): Promise<number>;
}

/**
 * Loads previous closes for the current (or next) session now, then again at 03:30 ET before
 * each following session, off the hot path. Failures are logged and retried every 5 minutes.
 */
export function schedulePrevCloses(
  source: PrevCloseSource,
  store: Pick<BoardStore, 'setPrevCloses'>,
  log: Logger,
  now = Date.now,
): PrevCloseSchedule {
  let last: PrevCloses | undefined;
  if (source.kind === 'none') return { cancel: () => undefined, reload: () => Promise.resolve(0) };
  let timer: NodeJS.Timeout | undefined;
  let cancelled = false;
  const run = async (date: string): Promise<void> => {
    try {
      last = (await loadPrevCloses(source, date, store, log)) ?? last;
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
  return {
    cancel: () => {
      cancelled = true;
      if (timer !== undefined) clearTimeout(timer);
    },
    reload: async () => {
      if (last !== undefined) return storePrevCloses(last, store, log, 'restored');
      last = await loadPrevCloses(source, sessionDateAt(now()), store, log);
      return last?.closes.size ?? 0;
    },
  };
}
