import type { BoardsView } from '../core/index.ts';
import type { LabOptions } from './lab.ts';
import type { LabCheck, LabFault, LabRun, LabSample } from './lab-types.ts';

/** The run's verdicts: processes, oracle, drops, lag, recovery after the burst. */
export function judge(
  totals: LabRun['totals'],
  samples: LabSample[],
  live: BoardsView,
  oracle: BoardsView,
  options: Pick<LabOptions, 'speed' | 'lagP99LimitMs' | 'faults' | 'recoveryLimitMs'> & {
    /** Events the replayer sent that the listener never received (a dropped or stalled feed). */
    notReceived?: number;
    /** The faults as injected: their seconds are left to their own recovery checks. */
    faultWindows?: readonly Pick<LabFault, 'startWallMs' | 'endWallMs'>[];
    /**
     * Events the ledger counts dropped (each once): when given, what decides whether the oracle
     * applies. A resent batch's expired copy is in the processes' dead-letter counts, not in it.
     */
    ledgerDropped?: number;
  },
): LabCheck[] {
  const faulted = (options.faults?.length ?? 0) > 0;
  const notReceived = options.notReceived ?? 0;
  // A process a fault killed on purpose exits with SIGKILL, and says so in its exit.
  const died = Object.entries(totals.exits).filter(
    ([, exit]) => exit !== '0' && exit !== 'killed by a fault',
  );
  const lost =
    options.ledgerDropped ?? totals.listenerDrops + totals.expired + totals.maxLengthDrops;
  const unequal = Object.keys(oracle.boards).filter(
    (name) =>
      JSON.stringify(live.boards[name as keyof BoardsView['boards']]) !==
      JSON.stringify(oracle.boards[name as keyof BoardsView['boards']]),
  );
  const realTime = options.speed === '1' || options.speed === '1x';
  const peak = samples.reduce<LabSample | undefined>(
    (best, s) => (best === undefined || s.sentPerSec > best.sentPerSec ? s : best),
    undefined,
  );
  // Seconds a fault made slow on purpose (from its start to the end of its recovery allowance)
  // are judged by its own recovery check, not by these.
  const faultWindows = (options.faultWindows ?? []).map(({ startWallMs, endWallMs }) => [
    startWallMs,
    endWallMs + (options.recoveryLimitMs ?? 30_000),
  ]);
  const inFault = (s: LabSample): boolean =>
    faultWindows.some(([from, to]) => s.wallMs >= from! && s.wallMs <= to!);
  const after =
    peak === undefined
      ? []
      : samples.filter((s) => s.wallMs >= peak.wallMs + 10_000 && !inFault(s));
  const slow = after.filter((s) => s.lagP99Ms !== null && s.lagP99Ms >= 1000);
  return [
    {
      name: 'processes',
      passed: died.length === 0 && totals.receivedEvents > 0,
      detail:
        died.length === 0
          ? `every process stopped cleanly (${Object.keys(totals.exits).join(', ')})`
          : `exited abnormally: ${died.map(([n, e]) => `${n} (${e})`).join(', ')}`,
    },
    lost > 0 || notReceived > 0
      ? {
          name: 'oracle',
          passed: true,
          skipped: true,
          detail:
            lost > 0
              ? `${lost} events were dropped or expired`
              : `the listener never received ${notReceived} events the replayer sent ` +
                '(the feed was dropped or stalled): the boards hold what it received',
        }
      : {
          name: 'oracle',
          passed: unequal.length === 0,
          detail:
            unequal.length === 0
              ? `boards equal the offline oracle over ${totals.sentEvents} events`
              : `boards differ from the oracle: ${unequal.join(', ')}`,
        },
    faulted
      ? {
          name: 'drops',
          passed: true,
          skipped: true,
          detail: `${lost} events dropped or expired under faults: the ledger check says whether each was counted`,
        }
      : realTime
        ? { name: 'drops', passed: lost === 0, detail: `${lost} events dropped or expired at 1x` }
        : {
            name: 'drops',
            passed: true,
            skipped: true,
            detail: `not judged at ${options.speed} (${lost} lost)`,
          },
    faulted
      ? {
          name: 'lag-p99',
          passed: true,
          skipped: true,
          detail: `p99 ${totals.lagP99Ms} ms over the run, faults included: each fault's recovery check judges the lag`,
        }
      : {
          name: 'lag-p99',
          passed: totals.lagP99Ms <= options.lagP99LimitMs,
          detail: `p99 ${totals.lagP99Ms} ms against a limit of ${options.lagP99LimitMs} ms`,
        },
    {
      name: 'recovery',
      passed: slow.length === 0,
      detail:
        after.length === 0
          ? 'the run ended within 10 s of its busiest second'
          : `${slow.length} of ${after.length} seconds from 10 s after the peak had p99 lag ≥ 1 s` +
            (faultWindows.length > 0 ? ' (the seconds of each fault and its recovery aside)' : ''),
    },
  ];
}
