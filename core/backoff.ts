/**
 * Returns the delay before reconnect attempt `attempt` (0 for the first retry), with "full
 * jitter": uniform in `[0, min(maxMs, initialMs × 2^attempt))`. Spreading retries over the whole
 * window, rather than around its end, keeps many clients cut at once from reconnecting in step.
 * `random` returns a number in `[0, 1)`, as `Math.random` does; injectable for tests.
 */
export function nextBackoffMs(
  attempt: number,
  initialMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  // Capping the exponent keeps 2^attempt finite however long an outage lasts.
  const exponent = Math.min(Math.max(0, Math.floor(attempt)), 52);
  const ceilingMs = Math.min(maxMs, initialMs * 2 ** exponent);
  return Math.floor(random() * ceilingMs);
}

/** Options of {@link createReconnectBackoff}. */
export interface ReconnectBackoffOptions {
  /** Ceiling of the first delay; doubles per attempt. */
  initialMs: number;
  /** Largest delay. */
  maxMs: number;
  /**
   * How long a connection must have streamed for its drop to start the delays over from the
   * first: a server that accepts, acknowledges and drops at once gets growing delays, not a
   * reconnect every few hundred ms. @default 60000
   */
  resetAfterMs?: number;
  /** Source of jitter, in `[0, 1)`. @default Math.random */
  random?: () => number;
  /** Clock, epoch ms. @default Date.now */
  now?: () => number;
}

/** The default of {@link ReconnectBackoffOptions.resetAfterMs}. */
export const BACKOFF_RESET_AFTER_MS = 60_000;

/**
 * The reconnect delays of one long-lived connection: full-jitter exponential backoff
 * ({@link nextBackoffMs}) whose attempt count starts over only once a connection has streamed
 * for `resetAfterMs`.
 */
export interface ReconnectBackoff {
  /** Attempts since the delays last started over (0: the next delay is the first step's). */
  readonly attempt: number;
  /** The current connection began streaming (now). */
  streaming(): void;
  /**
   * The current connection ended. It streamed from {@link streaming} until `streamedUntilMs`
   * (default now; a stalled connection passes its last data's time, so its silence does not
   * count); when that is at least `resetAfterMs`, the delays start over.
   */
  disconnected(streamedUntilMs?: number): void;
  /** The delay before the next attempt; counts the attempt. */
  nextDelayMs(): number;
}

/** Creates a {@link ReconnectBackoff}; throws a RangeError naming a bad option. */
export function createReconnectBackoff(options: ReconnectBackoffOptions): ReconnectBackoff {
  const { initialMs, maxMs } = options;
  const resetAfterMs = options.resetAfterMs ?? BACKOFF_RESET_AFTER_MS;
  const random = options.random ?? Math.random;
  const now = options.now ?? Date.now;
  if (!Number.isSafeInteger(resetAfterMs) || resetAfterMs < 0)
    throw new RangeError('backoff.resetAfterMs must be an integer ≥ 0');
  let attempt = 0;
  let streamingSinceMs: number | undefined;
  return {
    get attempt() {
      return attempt;
    },
    streaming() {
      streamingSinceMs = now();
    },
    disconnected(streamedUntilMs = now()) {
      if (streamingSinceMs !== undefined && streamedUntilMs - streamingSinceMs >= resetAfterMs)
        attempt = 0;
      streamingSinceMs = undefined;
    },
    nextDelayMs: () => nextBackoffMs(attempt++, initialMs, maxMs, random),
  };
}
