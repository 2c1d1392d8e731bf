import { spawnSync } from 'node:child_process';

/** What `promtool check metrics` said about an exposition. */
export interface PromtoolResult {
  /** 0: valid and lint-clean; 1: invalid; 3: lint problems. */
  status: number | null;
  output: string;
}

/** Pipes an exposition through `promtool check metrics` (format check and lint). */
export function promtoolCheckMetrics(exposition: string): PromtoolResult {
  const run = spawnSync('promtool', ['check', 'metrics'], { input: exposition, encoding: 'utf8' });
  if (run.error !== undefined) throw run.error;
  return { status: run.status, output: `${run.stdout}${run.stderr}`.trim() };
}
