import { describe, expect, it } from 'vitest';
import { EVENTS_HEADER, readDeadLetter } from './topology.ts';

describe('readDeadLetter', () => {
  const death = (reason: string, queue: string) => ({ count: 1, reason, queue, exchange: '' });

  it('reads the newest x-death entry and the event count', () => {
    const headers = {
      [EVENTS_HEADER]: 50,
      'x-death': [death('maxlen', 'ns.analyzers'), death('expired', 'ns.other')],
    };
    expect(readDeadLetter(headers)).toEqual({
      reason: 'maxlen',
      queue: 'ns.analyzers',
      events: 50,
    });
  });

  it('counts 0 events for a missing or malformed header', () => {
    for (const events of [undefined, '50', -1, Number.NaN]) {
      const headers = { [EVENTS_HEADER]: events, 'x-death': [death('expired', 'q')] };
      expect(readDeadLetter(headers)?.events).toBe(0);
    }
  });

  it('returns undefined for a message that was never dead-lettered', () => {
    expect(readDeadLetter(undefined)).toBeUndefined();
    expect(readDeadLetter({ [EVENTS_HEADER]: 3 })).toBeUndefined();
    expect(readDeadLetter({ 'x-death': [] })).toBeUndefined();
  });
});
