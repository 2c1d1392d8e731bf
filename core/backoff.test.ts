import { describe, expect, it } from 'vitest';
import { createReconnectBackoff } from './backoff.ts';

describe('createReconnectBackoff', () => {
  const setUp = (resetAfterMs = 60_000) => {
    const clock = { ms: 0 };
    const backoff = createReconnectBackoff({
      initialMs: 100,
      maxMs: 10_000,
      resetAfterMs,
      random: () => 0.5,
      now: () => clock.ms,
    });
    return { clock, backoff };
  };

  it('grows the delays across connections that stream briefly (accept, acknowledge, drop)', () => {
    const { clock, backoff } = setUp();
    const delays: number[] = [];
    for (let n = 0; n < 8; n++) {
      backoff.streaming();
      clock.ms += 500;
      backoff.disconnected();
      delays.push(backoff.nextDelayMs());
    }
    expect(delays).toEqual([50, 100, 200, 400, 800, 1600, 3200, 5000]);
    expect(backoff.attempt).toBe(8);
  });

  it('starts over once a connection has streamed for resetAfterMs', () => {
    const { clock, backoff } = setUp(60_000);
    for (let n = 0; n < 4; n++) {
      backoff.disconnected();
      backoff.nextDelayMs();
    }
    backoff.streaming();
    clock.ms += 59_999;
    backoff.disconnected();
    expect(backoff.nextDelayMs()).toBe(800);
    backoff.streaming();
    clock.ms += 60_000;
    backoff.disconnected();
    expect(backoff.attempt).toBe(0);
    expect(backoff.nextDelayMs()).toBe(50);
  });

  it('does not count a stalled connection’s silence as streaming', () => {
    const { clock, backoff } = setUp(60_000);
    backoff.disconnected();
    backoff.nextDelayMs();
    backoff.streaming();
    const lastDataMs = clock.ms + 10_000;
    clock.ms += 90_000;
    backoff.disconnected(lastDataMs);
    expect(backoff.nextDelayMs()).toBe(100);
  });

  it('counts a connection that never streamed as a failed attempt', () => {
    const { backoff } = setUp(0);
    backoff.disconnected();
    backoff.nextDelayMs();
    backoff.disconnected();
    expect(backoff.nextDelayMs()).toBe(100);
    // resetAfterMs 0: any streaming at all starts over (the former behaviour).
    backoff.streaming();
    backoff.disconnected();
    expect(backoff.nextDelayMs()).toBe(50);
  });

  it('rejects a negative resetAfterMs', () => {
    expect(() => createReconnectBackoff({ initialMs: 1, maxMs: 2, resetAfterMs: -1 })).toThrow(
      /resetAfterMs/,
    );
  });
});
