import { execFileSync } from 'node:child_process';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  EVENTS_HEADER,
  STATUS_BIT,
  createBatchPublisher,
  encodeBatch,
  openRecording,
  redactUrl,
  typeBit,
  type EventBatch,
  type MarketEvent,
  type RecordedFrame,
} from '../core/index.ts';
import { useIsolation } from '../testing/harness.ts';
import { createMassiveServer, type MassiveServer } from './massive-server.ts';
import {
  recordFromExchange,
  recordFromWebSocket,
  type RecorderResult,
  type RecorderStats,
} from './recorder.ts';

const KEY = 'rec-test-key-8d1f';
const log = pino({ level: 'silent' });
const META = { date: '2025-06-02', prevClose: { 'BRK.B': 412.1 } };

let dir: string;
const cleanups: (() => Promise<unknown>)[] = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'openbell-recorder-'));
});
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  await rm(dir, { recursive: true, force: true });
});

async function server(): Promise<MassiveServer> {
  const created = await createMassiveServer({ apiKey: KEY });
  cleanups.push(() => created.close());
  return created;
}

async function readFrames(path: string) {
  const recording = await openRecording(path);
  const frames: RecordedFrame[] = [];
  try {
    for await (const frame of recording.frames()) frames.push(frame);
  } finally {
    await recording.close();
  }
  return { recording, frames };
}

const nowUs = () => Math.round((performance.timeOrigin + performance.now()) * 1000);

/** Wire frames as Massive sends them, odd spacing included: they must be kept byte for byte. */
const WIRE = [
  '[{"ev":"T","sym":"BRK.B","x":4,"i":"52983525029461","z":1,"p":412.37,"s":100,"t":1748871000123,"q":7}]',
  '[ {"ev":"LULD","T":"BRK.B","h":433.2,"l":391.9,"i":[],"z":1,"t":1748871000123456789} ]',
  '[{"ev":"A","sym":"AAPL","v":120,"av":1000,"c":190.5,"s":1748871000000,"e":1748871001000},' +
    '{"ev":"status","status":"info","message":"mixed"},{"ev":"T","sym":"MSFT","p":1.5,"s":3}]',
  '[{"ev":"Q","sym":"BRK.A","bp":1.25,"ap":1.5,"bs":2,"as":3,"t":1748871000200}]',
];
const MASKS = [
  typeBit('T'),
  typeBit('LULD'),
  typeBit('A') | typeBit('T') | STATUS_BIT,
  typeBit('Q'),
];

describe('recordFromWebSocket', () => {
  it('records exactly the event frames, byte for byte and in order, up to maxFrames', async () => {
    const feed = await server();
    const output = join(dir, 'ws.obrec');
    const start = nowUs();
    const recording = recordFromWebSocket({
      url: feed.url,
      apiKey: KEY,
      topics: ['T.*', 'A.*', 'LULD.*', 'Q.*'],
      output,
      meta: META,
      log,
      maxFrames: WIRE.length,
      durationMs: 10_000, // only if the test fails
    });
    await feed.waitForSubscribers();
    feed.send([{ ev: 'status', status: 'info', message: 'status only: not recorded' }]);
    feed.send('not json: not recorded');
    for (const frame of WIRE) feed.send(frame);
    feed.send('[{"ev":"T","sym":"LATE","p":1,"s":1}]'); // past maxFrames: not recorded
    const result = await recording;
    const end = nowUs();
    expect(result).toMatchObject({ frames: 4, events: 6, stoppedBy: 'maxFrames', gaps: 0 });
    expect(result.bytes).toBe(WIRE.reduce((sum, f) => sum + Buffer.byteLength(f), 0));

    const { recording: file, frames } = await readFrames(output);
    expect(file.indexed).toBe(true);
    expect(file.meta).toEqual(META);
    expect(file.source).toBe(redactUrl(feed.url));
    expect(frames.map((f) => f.data.toString('utf8'))).toEqual(WIRE);
    expect(frames.map((f) => f.events)).toEqual([1, 1, 3, 1]);
    expect(frames.map((f) => f.types)).toEqual(MASKS);
    const times = frames.map((f) => f.timeUs);
    expect(times).toEqual([...times].sort((a, b) => a - b));
    expect(times[0]).toBeGreaterThanOrEqual(start);
    expect(times.at(-1)).toBeLessThanOrEqual(end);
    // The 19-digit nanosecond timestamp survives: the frame is never parsed and re-serialised.
    expect(frames[1]!.data.toString()).toContain('"t":1748871000123456789');
    await vi.waitFor(() => expect(feed.clients).toBe(0));
  });

  it('stops on abort, keeps what arrived before, and counts a reconnect as a gap', async () => {
    const feed = await server();
    const output = join(dir, 'abort.obrec');
    const controller = new AbortController();
    cleanups.push(() => Promise.resolve(controller.abort()));
    const ready = Promise.withResolvers<void>();
    const progress: RecorderStats[] = [];
    const recording = recordFromWebSocket({
      ...{ url: feed.url, apiKey: KEY, output, log },
      signal: controller.signal,
      onReady: () => ready.resolve(),
      onProgress: (stats) => progress.push(stats),
    });
    await ready.promise;
    feed.send(WIRE[0]!);
    // The writer flushes within 200 ms; the file reads back (unindexed) while still being written.
    await vi.waitFor(async () => expect((await readFrames(output)).frames).toHaveLength(1));
    await vi.waitFor(() => expect(progress.at(-1)).toMatchObject({ frames: 1, events: 1 }), {
      timeout: 2000,
    });
    feed.dropConnections();
    await vi.waitFor(() => expect(feed.connections).toBe(2));
    await feed.waitForSubscribers();
    feed.send(WIRE[2]!);
    await vi.waitFor(async () => expect((await readFrames(output)).frames).toHaveLength(2));
    controller.abort();
    const result = await recording;
    expect(result).toMatchObject({ frames: 2, events: 4, stoppedBy: 'signal', gaps: 1 });
    expect(result.reconnects).toBeGreaterThanOrEqual(1);
    expect(result.disconnectedMs).toBeGreaterThan(0);
    const { recording: file, frames } = await readFrames(output);
    expect(file.indexed).toBe(true);
    expect(frames.map((f) => f.data.toString())).toEqual([WIRE[0], WIRE[2]]);
  });

  it('rejects with the disk error (ENOSPC) before connecting', async () => {
    const feed = await server();
    const options = { url: feed.url, apiKey: KEY, log, durationMs: 5000 };
    const started = performance.now();
    await expect(
      recordFromWebSocket({ ...options, output: '/dev/full', overwrite: true }),
    ).rejects.toThrow(/\/dev\/full.*ENOSPC/);
    expect(performance.now() - started).toBeLessThan(2000);
    expect(feed.connections).toBe(0);
  });

  it('refuses to replace an existing file without overwrite', async () => {
    const output = join(dir, 'exists.obrec');
    await writeFile(output, 'precious');
    const options = { url: 'ws://127.0.0.1:9', apiKey: KEY, log, output };
    await expect(recordFromWebSocket(options)).rejects.toThrow(/already exists/);
  });

  it('rejects with the write error when the disk fails mid-recording', async () => {
    const feed = await server();
    const output = join(dir, 'pipe');
    execFileSync('mkfifo', [output]);
    // Opening a FIFO for reading waits for the writer: the recorder's open of its output.
    const reader = open(output, 'r');
    const ready = Promise.withResolvers<void>();
    const recording = recordFromWebSocket({
      ...{ url: feed.url, apiKey: KEY, output, log, overwrite: true, durationMs: 10_000 },
      onReady: () => ready.resolve(),
    });
    recording.catch(() => undefined);
    const fh = await reader;
    const { bytesRead } = await fh.read(Buffer.alloc(4096), 0, 4096);
    expect(bytesRead).toBeGreaterThan(8); // The magic and the header came through.
    await fh.close(); // No reader left: the next write fails with EPIPE.
    await ready.promise;
    feed.send(WIRE[0]!);
    const started = performance.now();
    await expect(recording).rejects.toThrow(/write failed.*EPIPE/);
    expect(performance.now() - started).toBeLessThan(2000);
    await vi.waitFor(() => expect(feed.clients).toBe(0));
  });

  it('rejects when authentication fails, without retrying', async () => {
    const feed = await server();
    const output = join(dir, 'auth.obrec');
    const options = { url: feed.url, apiKey: 'wrong-key', output, log, durationMs: 10_000 };
    await expect(recordFromWebSocket(options)).rejects.toThrow(/authentication failed/);
    expect(feed.connections).toBe(1);
    const { recording: file, frames } = await readFrames(output);
    expect(file.indexed).toBe(true);
    expect(frames).toEqual([]);
  });
});

describe('recordFromExchange', () => {
  const iso = useIsolation();
  const publishers: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    // Registered after useIsolation, so it runs before the vhost is deleted.
    for (const created of publishers.splice(0)) await created.close();
  });

  async function publisher() {
    const { amqpUrl, names } = iso();
    const created = createBatchPublisher({ url: amqpUrl, names, log });
    publishers.push(created);
    await created.start();
    return {
      publish(routingKey: string, body: Buffer, events = 1) {
        expect(created.tryPublish(routingKey, body, { [EVENTS_HEADER]: events })).toBe(true);
      },
    };
  }

  const T = (sym: string, p: number): MarketEvent => ({ ev: 'T', sym, p, s: 10, t: 1748871000000 });
  const batch = (id: string, receivedAtMs: number, events: MarketEvent[]): EventBatch => ({
    ...{ v: 1, id, receivedAtMs },
    events,
  });

  async function tap(output: string, extra: { bindings?: string[]; maxFrames: number }) {
    const { amqpUrl, names } = iso();
    const ready = Promise.withResolvers<void>();
    const result = recordFromExchange({
      ...{ amqpUrl, names, output, log, meta: META, durationMs: 10_000, ...extra },
      onReady: () => ready.resolve(),
    });
    result.catch(() => undefined);
    await ready.promise; // the tap's queue is bound and consumed
    return { result };
  }

  it('records each batch as one frame of its events, clamping times and skipping bad batches', async () => {
    const output = join(dir, 'tap.obrec');
    const recording = (await tap(output, { maxFrames: 3 })).result;
    const out = await publisher();
    const luld: MarketEvent = { ev: 'LULD', sym: 'BRK.B', h: 433.2, l: 391.9, t: 1748871000123 };
    const batches = [
      batch('b1', 1748871000000.5, [T('BRK.B', 412.37), T('AAPL', 190.5)]),
      batch('b2', 1748870999000, [{ ev: 'A', sym: 'AAPL', c: 190.5, av: 1000 }]),
      batch('b3', 1748871000100, [luld]),
    ];
    out.publish('T', encodeBatch(batches[0]!), 2);
    out.publish('A', encodeBatch(batches[1]!));
    out.publish('T', Buffer.from('not msgpack'));
    out.publish('LULD', encodeBatch(batches[2]!));
    const result: RecorderResult = await recording;
    expect(result).toMatchObject({
      frames: 3,
      events: 4,
      badBatches: 1,
      clampedFrames: 1,
      stoppedBy: 'maxFrames',
    });
    const { recording: file, frames } = await readFrames(output);
    expect(file.indexed).toBe(true);
    expect(file.meta).toEqual(META);
    expect(frames.map((f) => JSON.parse(f.data.toString()) as unknown)).toEqual(
      batches.map((b) => b.events),
    );
    expect(frames.map((f) => f.events)).toEqual([2, 1, 1]);
    expect(frames.map((f) => f.types)).toEqual([typeBit('T'), typeBit('A'), typeBit('LULD')]);
    // b2 arrived earlier than b1 by its own clock: recordings never go back in time.
    expect(frames.map((f) => f.timeUs)).toEqual([
      1748871000000500, 1748871000000500, 1748871000100000,
    ]);
  });

  it('records only the routing keys it is bound with', async () => {
    const output = join(dir, 'bound.obrec');
    const recording = (await tap(output, { bindings: ['A'], maxFrames: 2 })).result;
    const out = await publisher();
    const aggregate = (sym: string): MarketEvent => ({ ev: 'A', sym, c: 1 });
    out.publish('T', encodeBatch(batch('t1', 1, [T('X', 1)])));
    out.publish('A', encodeBatch(batch('a1', 2, [aggregate('Y')])));
    out.publish('T', encodeBatch(batch('t2', 3, [T('Z', 1)])));
    out.publish('A', encodeBatch(batch('a2', 4, [aggregate('W')])));
    await recording;
    const { frames } = await readFrames(output);
    expect(frames.map((f) => f.data.toString())).toEqual([
      JSON.stringify([aggregate('Y')]),
      JSON.stringify([aggregate('W')]),
    ]);
  });
});
