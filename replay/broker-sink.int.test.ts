import amqp from 'amqplib';
import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import {
  decodeBatch,
  decodeFrame,
  parseTransportOptions,
  typeBit,
  type MarketEvent,
  type RecordedFrame,
} from '../core/index.ts';
import { useIsolation } from '../testing/harness.ts';
import { createBrokerSink } from './broker-sink.ts';

const log = pino({ level: 'silent' });

/** Frames of 1–40 trades and aggregates over 300 symbols, plus a broken frame and a bad event. */
function frames(): RecordedFrame[] {
  const out: RecordedFrame[] = [];
  let t = 1_748_871_000_000;
  for (let f = 0; f < 400; f++) {
    const messages: unknown[] = [];
    for (let k = 0; k < 1 + ((f * 7) % 40); k++) {
      const sym = `S${(f * 13 + k) % 300}`;
      messages.push(
        k % 5 === 0
          ? { ev: 'A', sym, v: 10 + k, av: 1000 + f, o: 1, c: 1.5, h: 2, l: 1, s: t, e: t + 1000 }
          : {
              ev: 'T',
              sym,
              i: `${f}-${k}`,
              x: 4,
              p: 10 + k / 100,
              s: 100,
              t: t + k,
              q: f * 100 + k,
            },
      );
    }
    out.push(frame(t, JSON.stringify(messages), messages.length, typeBit('T') | typeBit('A')));
    t += 3;
  }
  out.push(frame(t, '[{"ev":"T","sym":', 1, typeBit('T')));
  out.push(frame(t + 1, '[{"ev":"T","sym":"OK","p":1,"s":1,"t":1748871000000},{"ev":"T"}]', 2, 0));
  return out;
}

function frame(timeUs: number, text: string, events: number, types: number): RecordedFrame {
  return { timeUs: timeUs * 1000, data: Buffer.from(text), events, types };
}

const key = (e: MarketEvent): string => JSON.stringify(e);

describe('broker sink', () => {
  const iso = useIsolation();

  for (const workers of [0, 2]) {
    it(`publishes every decodable event once, batched per type (${workers} encode workers)`, async () => {
      const { amqpUrl, names } = iso();
      const input = frames();
      const transport = parseTransportOptions({ batchMaxEvents: 50 });
      const sink = createBrokerSink({
        amqpUrl,
        names,
        log,
        group: 'analyzers',
        transport,
        workers,
      });
      await sink.start();
      for (const f of input) sink.send(f);
      await sink.close();

      const expected = input
        .flatMap((f) => decodeFrame(f.data).events)
        .map(key)
        .sort();
      const connection = await amqp.connect(amqpUrl);
      try {
        const channel = await connection.createChannel();
        const got: MarketEvent[] = [];
        const ids = new Set<string>();
        await channel.consume(
          names.queue('analyzers'),
          (m) => {
            const { batch } = decodeBatch(m!.content);
            expect(batch).toBeDefined();
            expect(batch!.events.length).toBeLessThanOrEqual(50);
            expect(new Set(batch!.events.map((e) => e.ev))).toEqual(
              new Set([m!.fields.routingKey]),
            );
            ids.add(batch!.id);
            got.push(...batch!.events);
          },
          { noAck: true },
        );
        await vi.waitFor(() => expect(ids.size).toBe(sink.stats().batches), { timeout: 5000 });
        expect(got.map(key).sort()).toEqual(expected);
        expect(ids.size).toBe(sink.stats().batches);
        expect(sink.stats()).toMatchObject({ events: expected.length, dropped: 0, workers });
        expect(sink.decodeCounts.invalid_json).toBe(1);
        expect(sink.decodeCounts.missing_symbol).toBe(1);
      } finally {
        await connection.close();
      }
    });
  }
});
