/** Per-second rates of monotonically increasing counters, over a sliding window of samples. */
export interface RateMeter {
  /** Takes a sample of every counter now (call about once a second). */
  sample(nowMs?: number): void;
  /** Rate per second of each counter over the window (0 until two samples exist). */
  rates(): Record<string, number>;
}

/** Creates a rate meter over `read()`'s counters, keeping `windowSamples` samples. */
export function createRateMeter(read: () => Record<string, number>, windowSamples = 10): RateMeter {
  const samples: { atMs: number; values: Record<string, number> }[] = [];
  return {
    sample(nowMs = Date.now()) {
      samples.push({ atMs: nowMs, values: { ...read() } });
      if (samples.length > windowSamples + 1) samples.shift();
    },
    rates() {
      const first = samples[0];
      const last = samples[samples.length - 1];
      if (first === undefined || last === undefined || last.atMs <= first.atMs) return {};
      const seconds = (last.atMs - first.atMs) / 1000;
      return Object.fromEntries(
        Object.entries(last.values).map(([k, v]) => [
          k,
          Math.round(((v - (first.values[k] ?? 0)) / seconds) * 10) / 10,
        ]),
      );
    },
  };
}
