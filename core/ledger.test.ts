import { describe, expect, it } from 'vitest';
import { listenerLedger, reconcileLedger } from './ledger.ts';

const listenerStats = {
  events: { T: 900, A: 100 },
  batches: 10,
  droppedEvents: 30,
  droppedBatches: 1,
  closedEvents: 5,
  bufferedEvents: 0,
};
const publisherStats = {
  published: 10,
  confirmed: 9,
  nacked: 0,
  nackedEvents: 0,
  unroutable: 1,
  unroutableEvents: 7,
  resent: 2,
  lost: 1,
  lostEvents: 8,
  inFlight: 0,
  reconnects: 1,
  connected: true,
};

describe('ledger', () => {
  it('listenerLedger sums accepted events and names every listener and publisher drop', () => {
    expect(listenerLedger(listenerStats, publisherStats)).toEqual({
      accepted: 1000,
      dropped: {
        'listener/buffer_full': 30,
        'listener/closed': 5,
        'publisher/unroutable': 7,
        'publisher/nacked': 0,
        'publisher/lost': 8,
      },
    });
  });

  it('reconcileLedger balances when every accepted event is applied or dropped', () => {
    const balance = reconcileLedger({
      listeners: [listenerLedger(listenerStats, publisherStats)],
      dates: [
        { applied: 900, dropped: { 'broker/expired': 40 } },
        { applied: 5, dropped: {} },
      ],
      analyzers: [{ 'analyzer/undecodable': 5 }],
    });
    expect(balance).toMatchObject({ accepted: 1000, applied: 905, unaccounted: 0, balanced: true });
    expect(balance.dropped).toEqual({
      'listener/buffer_full': 30,
      'listener/closed': 5,
      'publisher/unroutable': 7,
      'publisher/lost': 8,
      'broker/expired': 40,
      'analyzer/undecodable': 5,
    });
  });

  it('reconcileLedger reports silent loss and double counts by their sign', () => {
    const listeners = [{ accepted: 100, dropped: {} }];
    expect(reconcileLedger({ listeners, dates: [{ applied: 97, dropped: {} }] })).toMatchObject({
      unaccounted: 3,
      balanced: false,
    });
    expect(
      reconcileLedger({ listeners, dates: [{ applied: 99, dropped: { 'broker/maxlen': 2 } }] }),
    ).toMatchObject({ unaccounted: -1, balanced: false });
    expect(
      reconcileLedger({ listeners, dates: [{ applied: 90, dropped: {} }], inFlight: 10 }),
    ).toMatchObject({ unaccounted: 0, balanced: true });
  });
});
