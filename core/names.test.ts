import { describe, expect, it } from 'vitest';
import { ConfigError } from './errors.ts';
import { createNames } from './names.ts';

describe('createNames', () => {
  it('builds keys as <ns>:<entity>:{<date>}:<id> with the date as hash tag', () => {
    const names = createNames();
    expect(names.board('2026-11-24', 'gainers')).toBe('openbell:board:{2026-11-24}:gainers');
    expect(names.states('2026-11-24')).toBe('openbell:state:{2026-11-24}');
    expect(names.windowTrades('2026-11-24')).toBe('openbell:window:{2026-11-24}');
    expect(names.prevClose('2026-11-24')).toBe('openbell:prevclose:{2026-11-24}');
    expect(names.appliedBatches('2026-11-24')).toBe('openbell:batches:{2026-11-24}');
    expect(names.ledger('2026-11-24')).toBe('openbell:ledger:{2026-11-24}');
    expect(names.deadBatches('2026-11-24')).toBe('openbell:dead:{2026-11-24}');
    expect(names.boardUpdates('2026-11-24')).toBe('openbell:updates:{2026-11-24}');
    expect(names.exchange).toBe('openbell.events');
    expect(names.queue('analyzers')).toBe('openbell.analyzers');
  });

  it('uses the namespace everywhere', () => {
    const names = createNames({ namespace: 't-1a2b' });
    expect(names.board('2026-11-24', 'volume').startsWith('t-1a2b:')).toBe(true);
    expect(names.exchange).toBe('t-1a2b.events');
    expect(names.keyPattern).toBe('t-1a2b:*');
  });

  it('rejects identifiers and dates that would change a key shape', () => {
    const names = createNames();
    expect(() => names.queue('a:b')).toThrow(ConfigError);
    expect(() => names.queue('{A}')).toThrow(ConfigError);
    expect(() => names.queue('')).toThrow(ConfigError);
    expect(() => names.board('20261124', 'gainers')).toThrow(/YYYY-MM-DD/);
    expect(() => names.queue('a b')).toThrow(ConfigError);
    expect(() => createNames({ namespace: 'Open:Bell' })).toThrow(/namespace/);
  });
});
