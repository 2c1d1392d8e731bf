/** The bounds of one probe: what a target may make the exporter fetch, hold and answer. */
export interface ProbeLimits {
  /** Deadline of the fetch, every redirect included. @default 10000 */
  timeoutMs: number;
  /** A longer body fails the probe; it is read as a stream, cut off past this. @default 16 MiB */
  maxBodyBytes: number;
  /** Redirects followed at most, each checked against `allowedTargets`. @default 10 */
  maxRedirects: number;
  /**
   * Series one probe may produce, and items one metric's path may select; one more fails the
   * probe, found while evaluating, before the rest is built. @default 10000
   */
  maxSeries: number;
  /** A series with a longer label value (UTF-8 bytes) is dropped and counted. @default 1024 */
  maxLabelValueBytes: number;
}

/** The defaults of {@link ProbeLimits}, shared by `createExporter` and the CLI flags. */
export const DEFAULT_PROBE_LIMITS: Readonly<ProbeLimits> = {
  timeoutMs: 10_000,
  maxBodyBytes: 16 * 1024 * 1024,
  maxRedirects: 10,
  maxSeries: 10_000,
  maxLabelValueBytes: 1024,
};

/** The least each limit may be: a redirect limit of 0 fails every redirect. */
const MINIMUM: Readonly<ProbeLimits> = {
  timeoutMs: 1,
  maxBodyBytes: 1,
  maxRedirects: 0,
  maxSeries: 1,
  maxLabelValueBytes: 1,
};

/**
 * Merges limits over {@link DEFAULT_PROBE_LIMITS} and checks each is a whole number in range;
 * throws naming the first bad one, e.g. `maxSeries: expected a whole number >= 1, got 0`.
 */
export function parseProbeLimits(input: Partial<ProbeLimits> = {}): ProbeLimits {
  const limits: ProbeLimits = {
    timeoutMs: input.timeoutMs ?? DEFAULT_PROBE_LIMITS.timeoutMs,
    maxBodyBytes: input.maxBodyBytes ?? DEFAULT_PROBE_LIMITS.maxBodyBytes,
    maxRedirects: input.maxRedirects ?? DEFAULT_PROBE_LIMITS.maxRedirects,
    maxSeries: input.maxSeries ?? DEFAULT_PROBE_LIMITS.maxSeries,
    maxLabelValueBytes: input.maxLabelValueBytes ?? DEFAULT_PROBE_LIMITS.maxLabelValueBytes,
  };
  for (const key of Object.keys(limits) as (keyof ProbeLimits)[]) {
    const value = limits[key];
    if (!Number.isSafeInteger(value) || value < MINIMUM[key])
      throw new Error(`${key}: expected a whole number >= ${MINIMUM[key]}, got ${value}`);
  }
  return limits;
}
