import { sessionAt } from './calendar.ts';

/** Options of {@link createStallWatch}. */
export interface StallWatchOptions {
  /** Silence, while the market is open, that makes a stall; 0 turns the watch off. */
  timeoutMs: number;
  /**
   * Whether silence at `ms` (epoch) can be a stall. Outside it, quiet is expected and not counted.
   * @default {@link marketSessionOpen}
   */
  sessionOpen?: (ms: number) => boolean;
  /** Clock, epoch ms. @default Date.now */
  now?: () => number;
}

/**
 * Whether the US stocks feed should be carrying data at `ms`: from pre-market (04:00 ET) to the
 * end of after-hours (20:00 ET, 17:00 on an early close) of a trading day (core/calendar.ts).
 */
export function marketSessionOpen(ms: number): boolean {
  return sessionAt(ms) !== 'closed';
}

/**
 * Detects a stalled upstream: a connection that is up (pings answered) but carries no data. It
 * reads a counter that grows with the data (events received) when asked, so the data path pays
 * nothing; a reading that found the counter unchanged for `timeoutMs` of open session is a stall.
 */
export interface StallWatch {
  /** Starts watching (the connection began streaming) at data count `count`: silence counts from now. */
  reset(count: number): void;
  /** Takes a reading of the data counter; true when the stream has stalled. */
  check(count: number): boolean;
  /**
   * Epoch ms since which nothing arrived: the last reading that saw the counter move, the reset,
   * or the last reading with the market closed (so a quiet night is no stall at 04:00).
   */
  readonly quietSinceMs: number;
  /** The silence so far (0 while the market is closed), ms. */
  silentMs(): number;
}

/** Creates a {@link StallWatch}; throws a RangeError for a bad timeout. */
export function createStallWatch(options: StallWatchOptions): StallWatch {
  const { timeoutMs } = options;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 0)
    throw new RangeError('stall.timeoutMs must be an integer ≥ 0');
  const sessionOpen = options.sessionOpen ?? marketSessionOpen;
  const now = options.now ?? Date.now;
  let quietSinceMs = now();
  let last = 0;
  return {
    reset(count) {
      quietSinceMs = now();
      last = count;
    },
    check(count) {
      const at = now();
      if (count !== last || !sessionOpen(at)) {
        last = count;
        quietSinceMs = at;
        return false;
      }
      return timeoutMs > 0 && at - quietSinceMs >= timeoutMs;
    },
    get quietSinceMs() {
      return quietSinceMs;
    },
    silentMs: () => (sessionOpen(now()) ? now() - quietSinceMs : 0),
  };
}
