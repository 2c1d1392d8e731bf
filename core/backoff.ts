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
