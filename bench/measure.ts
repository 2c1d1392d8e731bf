import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

/** One measured figure of a benchmark. */
export interface Measurement {
  name: string;
  /** Units of work per run (events, messages…). */
  items: number;
  runs: number;
  /** Best run's throughput. */
  perSecond: number;
  /** Median run's throughput. */
  medianPerSecond: number;
  nsPerItem: number;
  [extra: string]: unknown;
}

/**
 * Runs `work` (which processes `items` units) `runs` times after one warm-up and reports the
 * best and median throughput. Synchronous work only: it measures one core.
 */
export function measureSync(
  name: string,
  items: number,
  work: () => unknown,
  runs = 7,
): Measurement {
  work();
  const seconds: number[] = [];
  for (let r = 0; r < runs; r++) {
    const start = process.hrtime.bigint();
    work();
    seconds.push(Number(process.hrtime.bigint() - start) / 1e9);
  }
  seconds.sort((a, b) => a - b);
  const best = seconds[0]!;
  const median = seconds[Math.floor(seconds.length / 2)]!;
  return {
    name,
    items,
    runs,
    perSecond: Math.round(items / best),
    medianPerSecond: Math.round(items / median),
    nsPerItem: Math.round((best * 1e9) / items),
  };
}

let clockTicks: number | undefined;
/** CPU seconds (user + system, every thread) a process has used, from /proc. */
export function cpuSeconds(pid: number): number {
  clockTicks ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // After the command: state is field 3, utime 14 and stime 15 (1-based, man 5 proc).
  return (Number(fields[11]) + Number(fields[12])) / clockTicks;
}

/** The pid of a local process whose command line matches, from /proc; `undefined` if none. */
export function findProcess(
  matches: (commandLine: string, pid: number) => boolean,
): number | undefined {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (
        matches(readFileSync(`/proc/${name}/cmdline`, 'utf8').replaceAll('\0', ' '), Number(name))
      )
        return Number(name);
    } catch {
      // It exited while we looked.
    }
  }
  return undefined;
}
