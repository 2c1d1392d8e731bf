import { createRandom } from '../core/index.ts';

/** Where {@link sampleWireEvents} starts by default: 09:30 ET on a trading day. */
export const SAMPLE_START_MS = 1795530600000;

/**
 * Wire-shaped events like the open's: mostly trades, a per-second aggregate stream, some quotes,
 * over a few thousand symbols, from `startMs`. Returned as the raw objects Massive sends (before
 * decoding).
 */
export function sampleWireEvents(
  count: number,
  seed = 1,
  startMs = SAMPLE_START_MS,
): Record<string, unknown>[] {
  const random = createRandom(seed);
  const symbols = Array.from({ length: 4000 }, (_, i) => `S${i.toString(36).toUpperCase()}`);
  const t0 = startMs;
  const out: Record<string, unknown>[] = [];
  for (let n = 0; n < count; n++) {
    const sym = symbols[Math.floor(random() ** 3 * symbols.length)]!;
    const price = Math.round((5 + random() * 300) * 100) / 100;
    const t = t0 + Math.floor(n / 50);
    const kind = random();
    if (kind < 0.8) {
      const trade: Record<string, unknown> = {
        ev: 'T',
        sym,
        i: String(100000 + n),
        x: 1 + (n % 20),
        p: price,
        s: 1 + Math.floor(random() * 500),
        t,
        q: 1000 + n,
        z: 1 + (n % 3),
      };
      if (random() < 0.3) trade['c'] = [12, 37];
      out.push(trade);
    } else if (kind < 0.95) {
      const s = t - (t % 1000);
      out.push({
        ev: 'A',
        sym,
        v: 100,
        av: 100000 + n,
        op: price,
        vw: price,
        o: price,
        c: price,
        h: price,
        l: price,
        a: price,
        z: 50,
        s,
        e: s + 1000,
      });
    } else {
      out.push({
        ev: 'Q',
        sym,
        bx: 4,
        bp: price,
        bs: 100,
        ax: 7,
        ap: price + 0.01,
        as: 200,
        c: 0,
        i: [604],
        t,
        q: 5000 + n,
        z: 3,
      });
    }
  }
  return out;
}

/** Splits wire events into frames of 1–100 events, as Massive sends them. */
export function toFrames(events: readonly Record<string, unknown>[], seed = 2): string[] {
  const random = createRandom(seed);
  const frames: string[] = [];
  for (let i = 0; i < events.length;) {
    const size = 1 + Math.floor(random() * 100);
    frames.push(JSON.stringify(events.slice(i, i + size)));
    i += size;
  }
  return frames;
}
