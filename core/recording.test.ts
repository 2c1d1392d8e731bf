import { existsSync } from 'node:fs';
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openRecording, type FrameRange } from './recording-reader.ts';
import { createRecordingWriter } from './recording-writer.ts';
import {
  LAYOUT,
  RECORDING_MAGIC,
  encodeRecord,
  type RecordedFrame,
  type RecordingMeta,
} from './recording.ts';

const T0 = 1_748_871_000_123_457; // 2025-06-02T13:30:00.123457Z, in µs
const META: RecordingMeta = { date: '2025-06-02', prevClose: { AAPL: 190.5 }, note: 'x' };

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'openbell-recording-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** `count` frames, `stepUs` apart, of ~`size` bytes each. */
function makeFrames(count: number, stepUs = 250_001, size = 40): RecordedFrame[] {
  return Array.from({ length: count }, (_, i) => {
    const text = `[{"ev":"T","sym":"S${i}","p":1.5,"i":"${'x'.repeat(size)}"}]`;
    return { timeUs: T0 + i * stepUs, data: Buffer.from(text), events: 1 + (i % 3), types: 4 };
  });
}

async function record(name: string, frames: RecordedFrame[], close = true): Promise<string> {
  const path = join(dir, name);
  const writer = await createRecordingWriter(path, META, { source: 'test', flushBytes: 4096 });
  for (const frame of frames) writer.write(frame);
  if (close) await writer.close();
  else {
    await writer.flush();
    await writer.abort();
  }
  return path;
}

async function readAll(path: string, range?: FrameRange) {
  const recording = await openRecording(path);
  const frames: RecordedFrame[] = [];
  try {
    for await (const frame of recording.frames(range)) frames.push(frame);
  } finally {
    await recording.close();
  }
  return { recording, frames };
}

/** File offset where frame `i` of `frames` starts. */
async function frameOffset(path: string, frames: RecordedFrame[], i: number): Promise<number> {
  const bytes = await readFile(path);
  let offset = LAYOUT.magic.length + LAYOUT.head + bytes.readUInt32LE(LAYOUT.magic.length);
  for (const frame of frames.slice(0, i))
    offset += LAYOUT.head + LAYOUT.frameHead + frame.data.length;
  return offset;
}

describe('recording files', () => {
  it('round-trips frames, µs receive times, meta and totals', async () => {
    const frames = makeFrames(50);
    frames.push({ ...frames[49]!, data: Buffer.from('not json'), events: 1, types: 0x80 });
    const path = await record('a.obrec', frames);
    const bytes = await readFile(path);
    expect(bytes.subarray(0, 8).toString('latin1')).toBe(RECORDING_MAGIC);
    const { recording, frames: back } = await readAll(path);
    expect(back).toEqual(frames);
    expect(recording.meta).toEqual(META);
    expect(recording.header).toEqual({
      format: 1,
      meta: META,
      source: 'test',
      createdBy: 'openbell',
    });
    expect(recording.indexed).toBe(true);
    expect(recording.torn).toBeUndefined();
    expect(recording.size).toBe(bytes.length);
    expect(recording.totals).toEqual({
      frames: 51,
      events: frames.reduce((n, f) => n + f.events, 0),
      bytes: frames.reduce((n, f) => n + f.data.length, 0),
      firstUs: T0,
      lastUs: T0 + 49 * 250_001,
    });
    // One entry per second of receive time: frames 0, 4, 8, … (250 001 µs apart).
    expect(recording.index.map((e) => e.frame)).toEqual([
      0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48,
    ]);
    expect(recording.index[1]).toMatchObject({
      timeUs: T0 + 4 * 250_001,
      offset: await frameOffset(path, frames, 4),
    });
  });

  it('reads frames larger than a read block', async () => {
    const frames = makeFrames(5);
    frames[2] = { ...frames[2]!, data: Buffer.alloc(2.5 * LAYOUT.block, 'x') };
    frames[3] = { ...frames[3]!, data: Buffer.alloc(LAYOUT.block - 30, 'y') };
    const { frames: back } = await readAll(await record('big.obrec', frames));
    expect(back.map((f) => f.timeUs)).toEqual(frames.map((f) => f.timeUs));
    expect(back.every((f, i) => f.data.equals(frames[i]!.data))).toBe(true);
  });

  it('writes identical bytes for identical input', async () => {
    const frames = makeFrames(30);
    const a = await readFile(await record('a.obrec', frames));
    const b = await readFile(await record('b.obrec', frames));
    expect(a.equals(b)).toBe(true);
  });

  it('reads an empty recording', async () => {
    const { recording, frames } = await readAll(await record('e.obrec', []));
    expect(frames).toEqual([]);
    expect(recording.totals).toMatchObject({ frames: 0, events: 0, firstUs: undefined });
    expect(recording.indexed).toBe(true);
  });

  it('reads everything before a torn tail, wherever the file was cut', async () => {
    const frames = makeFrames(20);
    const path = await record('full.obrec', frames);
    const full = await readFile(path);
    const last = await frameOffset(path, frames, 19);
    const end = await frameOffset(path, frames, 20);
    const cuts = [last + 1, last + 5, last + 9, last + 20, end - 1, end, end + 3, full.length - 1];
    for (const cut of cuts) {
      const torn = join(dir, `cut-${cut}.obrec`);
      await writeFile(torn, full.subarray(0, cut));
      const complete = cut >= end ? 20 : 19;
      const indexEnd = full.length - LAYOUT.trailer; // the INDEX record is whole, its trailer not
      const goodEnd = cut >= indexEnd ? indexEnd : cut >= end ? end : last;
      const { recording, frames: back } = await readAll(torn);
      expect(back, `cut at ${cut}`).toEqual(frames.slice(0, complete));
      expect(recording.indexed).toBe(false);
      expect(recording.totals.frames).toBe(complete);
      expect(recording.torn).toEqual(
        cut > goodEnd ? { offset: goodEnd, bytes: cut - goodEnd } : undefined,
      );
      await appendFile(torn, Buffer.from('garbage\u0000\u0001'));
      const again = await readAll(torn);
      expect(again.frames).toEqual(frames.slice(0, complete));
      expect(again.recording.torn).toEqual({ offset: goodEnd, bytes: cut - goodEnd + 9 });
    }
  });

  it('reports bytes appended after a clean close as torn, keeping every frame', async () => {
    const frames = makeFrames(10);
    const path = await record('a.obrec', frames);
    const size = (await readFile(path)).length;
    await appendFile(path, 'tail');
    const { recording, frames: back } = await readAll(path);
    expect(back).toEqual(frames);
    expect(recording.torn).toEqual({ offset: size, bytes: 4 });
  });

  it('reads a file whose writer never closed (no index) up to its last frame', async () => {
    const frames = makeFrames(10);
    const { recording, frames: back } = await readAll(await record('a.obrec', frames, false));
    expect(back).toEqual(frames);
    expect(recording.torn).toBeUndefined();
    expect(recording.indexed).toBe(false);
    expect(recording.index.map((e) => e.frame)).toEqual([0, 4, 8]);
  });

  it('detects a flipped byte in the middle', async () => {
    const frames = makeFrames(20);
    const closed = await record('closed.obrec', frames);
    const open = await record('open.obrec', frames, false);
    const at = (await frameOffset(closed, frames, 7)) + 30;
    for (const path of [closed, open]) {
      const bytes = await readFile(path);
      bytes[at] = bytes[at]! ^ 0x01;
      await writeFile(path, bytes);
    }
    // With a trailer the reader trusts the index and meets the damage while iterating.
    await expect(readAll(closed)).rejects.toThrow(/damaged record at offset/);
    // Without one, the opening scan stops at the damage.
    const { recording, frames: back } = await readAll(open);
    expect(back).toEqual(frames.slice(0, 7));
    expect(recording.torn?.offset).toBe(await frameOffset(open, frames, 7));
  });

  it('seeks through the index without reading from the start', async () => {
    const frames = makeFrames(400, 100_000, 4000); // 40 s, ~1.6 MB
    for (const path of [await record('a.obrec', frames), await record('b.obrec', frames, false)]) {
      const recording = await openRecording(path);
      const collect = async (range: FrameRange) => {
        const out: RecordedFrame[] = [];
        for await (const frame of recording.frames(range)) out.push(frame);
        return out.map((f) => (f.timeUs - T0) / 100_000);
      };
      const before = recording.bytesRead;
      expect(await collect({ fromUs: T0 + 35_000_000 })).toEqual(
        Array.from({ length: 50 }, (_, i) => 350 + i),
      );
      expect(recording.bytesRead - before).toBeLessThan(recording.size * 0.2);
      expect(await collect({ fromUs: T0 + 1_050_000, toUs: T0 + 1_500_000 })).toEqual([
        11, 12, 13, 14,
      ]);
      expect(await collect({ fromUs: T0 + 1_000_000, toUs: T0 + 1_000_001 })).toEqual([10]);
      expect(await collect({ toUs: T0 + 200_000 })).toEqual([0, 1]);
      expect(await collect({ fromUs: T0 + 40_000_000 })).toEqual([]);
      let chunks = 0;
      for await (const chunk of recording.chunks()) chunks += chunk.length > 0 ? 1 : 0;
      expect(chunks).toBeGreaterThan(1);
      await recording.close();
    }
  });

  it('refuses a receive time before the previous one, and keeps equal ones', async () => {
    const writer = await createRecordingWriter(join(dir, 'a.obrec'), {});
    const frame = makeFrames(1)[0]!;
    writer.write(frame);
    writer.write(frame);
    expect(() => writer.write({ ...frame, timeUs: frame.timeUs - 1 })).toThrow(
      /before the previous/,
    );
    expect(() => writer.write({ ...frame, timeUs: 1.5 })).toThrow(/integer/);
    expect((await writer.close()).frames).toBe(2);
  });

  it('refuses to overwrite unless asked, and rejects bad meta', async () => {
    const path = await record('a.obrec', makeFrames(1));
    await expect(createRecordingWriter(path, {})).rejects.toThrow(/already exists/);
    await (await createRecordingWriter(path, {}, { overwrite: true })).close();
    expect((await readAll(path)).frames).toEqual([]);
    await expect(createRecordingWriter(join(dir, 'b'), { date: '2/6/25' })).rejects.toThrow(
      /meta\.date/,
    );
  });

  it.skipIf(!existsSync('/dev/full'))(
    'surfaces a disk error instead of leaving a gap',
    async () => {
      const writer = await createRecordingWriter(
        '/dev/full',
        {},
        { overwrite: true, flushBytes: 1024 },
      );
      for (const frame of makeFrames(100)) writer.write(frame); // sealed chunks start failing writes
      await expect(writer.flush()).rejects.toThrow(/write failed.*ENOSPC/);
      expect(() => writer.write(makeFrames(1)[0]!)).toThrow(/ENOSPC/);
      await expect(writer.close()).rejects.toThrow(/ENOSPC/);
    },
  );

  it('refuses files that are not recordings, or of a newer format', async () => {
    const other = join(dir, 'other');
    await writeFile(other, 'hello world, not a recording');
    await expect(openRecording(other)).rejects.toThrow(/not an openbell recording/);
    const newer = join(dir, 'newer');
    const header = { format: 2, meta: {}, source: '', createdBy: 'future' };
    await writeFile(
      newer,
      Buffer.concat([LAYOUT.magic, encodeRecord(1, Buffer.from(JSON.stringify(header)))]),
    );
    await expect(openRecording(newer)).rejects.toThrow(/format 2 is newer/);
  });

  it('flushes on its timer, so a reader sees frames while the writer runs', async () => {
    const path = join(dir, 'live.obrec');
    const writer = await createRecordingWriter(path, {}, { flushIntervalMs: 10 });
    writer.write(makeFrames(1)[0]!);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const { recording, frames } = await readAll(path);
    expect(frames).toHaveLength(1);
    expect(recording.indexed).toBe(false);
    await writer.close();
  });
});
