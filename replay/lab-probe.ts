import * as hdr from 'hdr-histogram-js';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';

/** The parts of an analyzer's `/health` the lab reads. */
export interface AnalyzerHealth {
  events: number;
  lagHistogram: string;
  consumer: { deadLettered: Record<string, number> };
}

/** GETs a JSON document; undefined when the process does not answer (yet, or any more). */
export async function getJson(
  url: string,
  timeoutMs = 1000,
): Promise<Record<string, unknown> | undefined> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return (await response.json()) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** Resident memory of a process in MiB, from /proc; undefined once it is gone. */
export async function rssMiB(pid: number | undefined): Promise<number | undefined> {
  if (pid === undefined) return undefined;
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kb = /VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1];
    return kb === undefined ? undefined : Math.round((Number(kb) / 1024) * 10) / 10;
  } catch {
    return undefined;
  }
}

/**
 * Lag percentiles per interval, merged over analyzers: each `/health` carries its analyzer's
 * cumulative histogram; the difference from the previous reading is the interval's.
 */
export function createLagWindows(): {
  add(process: string, encoded: string): void;
  /** p50 and p99 of everything added since the last call; nulls when nothing was applied. */
  take(): { p50: number | null; p99: number | null };
  /** Percentiles and max over the whole run. */
  total(): { p50: number; p99: number; max: number };
} {
  const previous = new Map<string, hdr.Histogram>();
  const build = () =>
    hdr.build({
      lowestDiscernibleValue: 1,
      highestTrackableValue: 3_600_000,
      numberOfSignificantValueDigits: 3,
    });
  let window = build();
  const all = build();
  return {
    add(process, encoded) {
      const current = hdr.decodeFromCompressedBase64(encoded);
      const delta = build();
      delta.add(current);
      const before = previous.get(process);
      if (before !== undefined) delta.subtract(before);
      previous.set(process, current);
      window.add(delta);
      all.add(delta);
    },
    take() {
      const out =
        window.totalCount === 0
          ? { p50: null, p99: null }
          : { p50: window.getValueAtPercentile(50), p99: window.getValueAtPercentile(99) };
      window = build();
      return out;
    },
    total: () =>
      all.totalCount === 0
        ? { p50: 0, p99: 0, max: 0 }
        : {
            p50: all.getValueAtPercentile(50),
            p99: all.getValueAtPercentile(99),
            max: all.maxValue,
          },
  };
}

/** A TCP port free on loopback right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}
