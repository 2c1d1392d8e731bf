import type { DateLedger } from './board-store.ts';
import type { ListenerStats } from './listener.ts';
import type { BatchPublisherStats } from './publisher.ts';

/**
 * What a listener accounts for in the ledger: the events it accepted, and those it dropped itself
 * or that its publisher could not hand to a queue, by `<stage>/<reason>`.
 */
export interface ListenerLedger {
  /** Events accepted into batches (every event decoded from the feed; decode errors are not). */
  accepted: number;
  /** Events dropped before reaching a queue, by `<stage>/<reason>`. */
  dropped: Record<string, number>;
}

/** The listener's part of the ledger, from its and its publisher's counters. */
export function listenerLedger(
  listener: Readonly<ListenerStats>,
  publisher: Readonly<BatchPublisherStats>,
): ListenerLedger {
  let accepted = 0;
  for (const n of Object.values(listener.events)) accepted += n ?? 0;
  return {
    accepted,
    dropped: {
      'listener/buffer_full': listener.droppedEvents,
      'listener/closed': listener.closedEvents,
      'publisher/unroutable': publisher.unroutableEvents,
      'publisher/nacked': publisher.nackedEvents,
      'publisher/lost': publisher.lostEvents,
    },
  };
}

/** Everything a quiet pipeline's ledger is reconciled from. */
export interface LedgerParts {
  /** Each listener's part (one per mdp or replayer that published). */
  listeners: readonly ListenerLedger[];
  /** Redis's ledger of each trading date the events fall on. */
  dates: readonly DateLedger[];
  /** Drops counted by analyzer processes themselves, by `<stage>/<reason>` (undecodable batches). */
  analyzers?: readonly Record<string, number>[];
  /** Events still in flight (buffered, unconfirmed, queued): 0 once quiet. */
  inFlight?: number;
}

/** The result of {@link reconcileLedger}. */
export interface LedgerBalance {
  accepted: number;
  applied: number;
  /** Every drop, by `<stage>/<reason>`, summed over the parts. */
  dropped: Record<string, number>;
  inFlight: number;
  /** accepted − applied − Σ dropped − in flight: 0 when every event is accounted for. */
  unaccounted: number;
  balanced: boolean;
}

/**
 * Reconciles the ledger: every event a listener accepted is, once the pipeline is quiet, either
 * applied exactly once or counted as dropped with a stage and a reason. A positive `unaccounted`
 * is silent loss; a negative one is an event counted twice.
 */
export function reconcileLedger(parts: LedgerParts): LedgerBalance {
  const dropped: Record<string, number> = {};
  const add = (from: Record<string, number>): void => {
    for (const [key, n] of Object.entries(from))
      if (n !== 0) dropped[key] = (dropped[key] ?? 0) + n;
  };
  let accepted = 0;
  for (const listener of parts.listeners) {
    accepted += listener.accepted;
    add(listener.dropped);
  }
  let applied = 0;
  for (const date of parts.dates) {
    applied += date.applied;
    add(date.dropped);
  }
  for (const analyzer of parts.analyzers ?? []) add(analyzer);
  const inFlight = parts.inFlight ?? 0;
  let droppedTotal = 0;
  for (const n of Object.values(dropped)) droppedTotal += n;
  const unaccounted = accepted - applied - droppedTotal - inFlight;
  return { accepted, applied, dropped, inFlight, unaccounted, balanced: unaccounted === 0 };
}
