import { SingleBar } from 'cli-progress';
import type { Replay, ReplayPace } from './replayer.ts';

/** Stops a progress display and returns nothing. */
export type StopProgress = () => void;

/**
 * Shows a replay's progress (events, rate, how far behind schedule, ETA) on a terminal; prints
 * nothing when `stream` is not a TTY, so logs and CI output stay clean.
 */
export function showProgress(
  run: Replay,
  totalEvents: number,
  pace: ReplayPace,
  stream: NodeJS.WriteStream = process.stderr,
): StopProgress {
  if (stream.isTTY !== true) return () => undefined;
  const bar = new SingleBar({
    stream,
    format:
      ' replay |{bar}| {percentage}% | {value}/{total} events | {rate} ev/s | behind {behind} ms | ETA {eta_formatted}',
    hideCursor: true,
    etaBuffer: 20,
    barsize: 24,
  });
  bar.start(Math.max(1, totalEvents), 0, { rate: 0, behind: 0 });
  let last = { at: performance.now(), events: 0 };
  const timer = setInterval(() => {
    const now = performance.now();
    const events = run.stats.events;
    const rate = Math.round(((events - last.events) * 1000) / Math.max(1, now - last.at));
    last = { at: now, events };
    const behind = pace.kind === 'max' ? 0 : Math.round(run.stats.behindMs);
    bar.update(Math.min(events, Math.max(1, totalEvents)), { rate, behind });
  }, 250);
  timer.unref();
  return () => {
    clearInterval(timer);
    bar.update(Math.min(run.stats.events, Math.max(1, totalEvents)));
    bar.stop();
  };
}
