import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createRecordingWriter,
  newYorkTimeToMs,
  openRecording,
  typeBit,
  type Recording,
} from '../core/index.ts';
import { parsePace, rangeOf, replay } from './replayer.ts';

const DATE = '2026-11-23';
const T0_US = newYorkTimeToMs(DATE, '09:29:59') * 1000;
let dir: string;
let recording: Recording;

/** 200 frames of 5 trades, one every 10 ms of market time: 2 s from 09:29:59. */
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'openbell-replayer-'));
  const path = join(dir, 'r.obrec');
  const writer = await createRecordingWriter(path, { date: DATE });
  for (let k = 0; k < 200; k++) {
    const events = Array.from({ length: 5 }, (_, i) => ({ ev: 'T', sym: `S${i}`, p: 10, s: 1 }));
    writer.write({
      timeUs: T0_US + k * 10_000,
      data: Buffer.from(JSON.stringify(events)),
      events: 5,
      types: typeBit('T'),
    });
  }
  await writer.close();
  recording = await openRecording(path);
});
afterAll(async () => {
  await recording.close();
  await rm(dir, { recursive: true, force: true });
});

describe('replay', () => {
  it('sends each frame at start + (t − t0) / speed, with small measured lateness', async () => {
    const sent: number[] = [];
    const start = performance.now();
    const run = replay({
      recording,
      pace: parsePace('4', undefined),
      send: () => sent.push(performance.now() - start),
    });
    const stats = await run.done;
    expect(stats.frames).toBe(200);
    expect(stats.events).toBe(1000);
    // 2 s of market time at 4x: the last frame is due at 497.5 ms.
    expect(stats.intendedMs).toBeCloseTo(497.5, 1);
    expect(sent[199]!).toBeGreaterThanOrEqual(495.5);
    expect(sent[199]!).toBeLessThan(497.5 + 250);
    const lateness = run.lateness();
    expect(lateness.count).toBe(200);
    expect(lateness.p50).toBeLessThan(20);
    // Frames never go out early: a frame due within 1 ms goes at once, and timers round to 1 ms.
    sent.forEach((at, k) => expect(at).toBeGreaterThanOrEqual((k * 10) / 4 - 2));
  });

  it('catches up after a stall instead of drifting', async () => {
    const sent: number[] = [];
    const start = performance.now();
    const run = replay({
      recording,
      pace: parsePace('4', undefined),
      send: () => {
        // One sink call blocks for 400 ms: the frames due meanwhile go out at once.
        if (sent.length === 20) while (performance.now() - start < 450);
        sent.push(performance.now() - start);
      },
    });
    const stats = await run.done;
    expect(stats.frames).toBe(200);
    // The end is on schedule all the same: the lost 400 ms were not added to every later frame.
    expect(sent[199]!).toBeLessThan(497.5 + 250);
    expect(run.lateness().max).toBeGreaterThan(300);
  });

  it('paces by events per second with --rate', async () => {
    const start = performance.now();
    const stats = await replay({
      recording,
      pace: parsePace(undefined, '4000'),
      send: () => undefined,
    }).done;
    // 1,000 events at 4,000/s: the last frame (events 995–999) is due at 248.75 ms.
    expect(stats.intendedMs).toBeCloseTo(248.75, 1);
    expect(performance.now() - start).toBeGreaterThanOrEqual(248);
  });

  it('replays a --from/--to window of trading-day times', async () => {
    const range = rangeOf(recording, '09:30:00', '09:30:00.5');
    const times: number[] = [];
    await replay({ recording, range, pace: { kind: 'max' }, send: (f) => times.push(f.timeUs) })
      .done;
    expect(times).toHaveLength(50);
    expect(times[0]).toBe(T0_US + 1_000_000);
    expect(() => rangeOf(recording, '09:31', '09:30')).toThrow(/not before/);
  });

  it('loops until stopped, keeping the schedule across passes', async () => {
    const abort = new AbortController();
    let frames = 0;
    const run = replay({
      recording,
      pace: { kind: 'max' },
      loop: true,
      signal: abort.signal,
      send: () => {
        if (++frames === 450) abort.abort();
      },
    });
    const stats = await run.done;
    expect(stats.passes).toBe(3);
    expect(stats.frames).toBe(450);
  });

  it('refuses bad paces with the flag named', () => {
    expect(() => parsePace('fast', undefined)).toThrow(/replay.speed/);
    expect(() => parsePace('2', '100')).toThrow(/not both/);
    expect(() => parsePace(undefined, '-5')).toThrow(/replay.rate/);
    expect(parsePace('10x', undefined)).toEqual({ kind: 'speed', factor: 10 });
  });
});
