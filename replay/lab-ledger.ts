import {
  reconcileLedger,
  type DateLedger,
  type LedgerBalance,
  type ListenerLedger,
} from '../core/index.ts';
import type { LabCheck } from './lab-types.ts';

/** What the lab reads at the end of a run, once the pipeline is quiet, to reconcile its ledger. */
export interface LabLedgerInput {
  /** The final `/health` document of every process of the run (mdp, lba…), keyed by its name. */
  health: Readonly<Record<string, Record<string, unknown> | undefined>>;
  /** Redis's ledger of each trading date the recording covers. */
  dates: readonly DateLedger[];
}

/**
 * The listeners' ledgers (the mdp's `ledger`) and the analyzers' own drops (`undecodableEvents`,
 * which no batch id lets Redis count) from the processes' final `/health` documents.
 */
export function ledgerPartsOf(health: LabLedgerInput['health']): {
  listeners: ListenerLedger[];
  analyzers: Record<string, number>[];
} {
  const listeners: ListenerLedger[] = [];
  const analyzers: Record<string, number>[] = [];
  for (const document of Object.values(health)) {
    if (document === undefined) continue;
    const ledger = document['ledger'] as ListenerLedger | undefined;
    if (ledger !== undefined && typeof ledger.accepted === 'number') listeners.push(ledger);
    const analyzer: unknown = document['analyzer'];
    const undecodable =
      typeof analyzer === 'object' && analyzer !== null
        ? Number((analyzer as { undecodableEvents?: unknown }).undecodableEvents ?? 0)
        : 0;
    if (undecodable > 0) analyzers.push({ 'analyzer/undecodable': undecodable });
  }
  return { listeners, analyzers };
}

/**
 * The `ledger` check: once the run is quiet, every event the listener accepted was applied exactly
 * once or counted as dropped with a stage and a reason. Anything else fails the run, with the
 * difference and every count in the detail.
 */
export function checkLedger(input: LabLedgerInput): { check: LabCheck; balance: LedgerBalance } {
  const parts = ledgerPartsOf(input.health);
  const balance = reconcileLedger({ ...parts, dates: input.dates });
  const drops = Object.entries(balance.dropped)
    .map(([key, n]) => `${key} ${n.toLocaleString('en-US')}`)
    .join(', ');
  const counts =
    `accepted ${balance.accepted.toLocaleString('en-US')} = applied ` +
    `${balance.applied.toLocaleString('en-US')} + dropped ${drops === '' ? '0' : `(${drops})`}`;
  const check: LabCheck =
    parts.listeners.length === 0
      ? { name: 'ledger', passed: false, detail: 'no listener ledger in any /health document' }
      : {
          name: 'ledger',
          passed: balance.balanced,
          detail: balance.balanced
            ? counts
            : `${counts}: ${Math.abs(balance.unaccounted).toLocaleString('en-US')} events ` +
              (balance.unaccounted > 0 ? 'unaccounted for (lost silently)' : 'counted twice'),
        };
  return { check, balance };
}
