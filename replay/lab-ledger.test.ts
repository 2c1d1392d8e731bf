import { describe, expect, it } from 'vitest';
import { checkLedger } from './lab-ledger.ts';

const mdp = {
  status: 'ok',
  ledger: { accepted: 1000, dropped: { 'listener/buffer_full': 10, 'publisher/lost': 0 } },
  analyzer: null,
};
const lba = { status: 'ok', analyzer: { undecodableEvents: 5 } };

describe('lab ledger check', () => {
  it('passes when accepted equals applied plus every counted drop', () => {
    const { check, balance } = checkLedger({
      health: { mdp, 'lba-1': lba, 'lba-2': { analyzer: { undecodableEvents: 0 } } },
      dates: [{ applied: 955, dropped: { 'broker/expired': 30 } }],
    });
    expect(balance).toMatchObject({ accepted: 1000, applied: 955, unaccounted: 0 });
    expect(check).toEqual({
      name: 'ledger',
      passed: true,
      detail:
        'accepted 1,000 = applied 955 + dropped (listener/buffer_full 10, broker/expired 30, analyzer/undecodable 5)',
    });
  });

  it('fails on silent loss and on double counting, saying which', () => {
    const lost = checkLedger({ health: { mdp }, dates: [{ applied: 980, dropped: {} }] });
    expect(lost.check.passed).toBe(false);
    expect(lost.check.detail).toMatch(/10 events unaccounted for \(lost silently\)$/);
    const twice = checkLedger({ health: { mdp }, dates: [{ applied: 1000, dropped: {} }] });
    expect(twice.check.passed).toBe(false);
    expect(twice.check.detail).toMatch(/10 events counted twice$/);
  });

  it('fails when no process reported a listener ledger', () => {
    const { check } = checkLedger({ health: { 'lba-1': lba }, dates: [] });
    expect(check).toMatchObject({
      passed: false,
      detail: 'no listener ledger in any /health document',
    });
  });
});
