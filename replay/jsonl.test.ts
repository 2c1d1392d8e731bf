import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile, access } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRecordingWriter, openRecording, type RecordedFrame } from '../core/index.ts';
import { exportJsonl, importJsonl, rawMember } from './jsonl.ts';

/** Canonical JSONL: what exportJsonl writes, so it must come back identical. */
const CANONICAL = [
  '{"meta":{"date":"2025-06-02","prevClose":{"AAPL":190.5,"BRK.B":401.25},"venue":"test"}}',
  '{"t":1748871000000,"msgs":[{"ev":"status","status":"connected","message":"Connected Successfully"}]}',
  '{"t":1748871000123.457,"msgs":[{"ev":"LULD","T":"AAPL","h":210.5,"l":190.25,"i":[],"z":3,"t":1748871000123456789,"q":7}]}',
  '{"t":1748871000123.457,"msgs":[{"ev":"T","sym":"AAPL","x":4,"i":"52983525029461","z":3,"p":200.01,"s":0,"ds":"0.314159","t":1748871000122,"q":1}, {"ev":"status","status":"success","message":"subscribed to: T.*"}]}',
  '{"t":1748871001500.001,"msgs":[]}',
  '{"t":1748871002000.5,"msgs":[{"ev":"Q","sym":"MSFT","bx":4,"bp":400.1,"bs":1,"ax":7,"ap":400.2,"as":2,"t":1748871001999}]}',
].join('\n');

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'openbell-jsonl-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function exportToFile(recording: string, path: string) {
  const out = createWriteStream(path);
  const counts = await exportJsonl(recording, out);
  out.end();
  await finished(out);
  return counts;
}

describe('JSONL interchange', () => {
  it('JSONL → recording → JSONL gives the same text, ns timestamps and decimal strings included', async () => {
    const input = join(dir, 'in.jsonl');
    await writeFile(input, `${CANONICAL}\n`);
    const result = await importJsonl(input, join(dir, 'a.obrec'));
    expect(result).toEqual({ frames: 5, events: 5, lines: 6, skipped: 0 });

    const recording = await openRecording(join(dir, 'a.obrec'));
    const frames: RecordedFrame[] = [];
    for await (const frame of recording.frames()) frames.push(frame);
    await recording.close();
    expect(recording.meta).toEqual({
      date: '2025-06-02',
      prevClose: { AAPL: 190.5, 'BRK.B': 401.25 },
      venue: 'test',
    });
    expect(recording.source).toBe('jsonl');
    expect(frames.map((f) => f.timeUs)).toEqual([
      1748871000000000, 1748871000123457, 1748871000123457, 1748871001500001, 1748871002000500,
    ]);
    expect(frames[1]!.data.toString()).toContain('"t":1748871000123456789');
    expect(frames[2]!.data.toString()).toContain('"q":1}, {"ev":"status"');
    expect(frames.map((f) => [f.events, f.types])).toEqual([
      [1, 0x80],
      [1, 0x10],
      [2, 0x84],
      [0, 0],
      [1, 0x08],
    ]);

    await exportToFile(join(dir, 'a.obrec'), join(dir, 'out.jsonl'));
    expect(await readFile(join(dir, 'out.jsonl'), 'utf8')).toBe(`${CANONICAL}\n`);
  });

  it('recording → JSONL → recording gives a byte-identical file', async () => {
    const first = join(dir, 'a.obrec');
    const writer = await createRecordingWriter(first, { date: '2025-06-02' }, { source: 'jsonl' });
    for (let i = 0; i < 3000; i++) {
      const data = Buffer.from(
        `[{"ev":"T","sym":"S${i % 97}","p":${i / 8},"t":${1748871000000 + i}}]`,
      );
      writer.write({ timeUs: 1748871000000000 + i * 1237, data, events: 1, types: 0x04 });
    }
    await writer.close();
    expect(await exportToFile(first, join(dir, 'a.jsonl'))).toEqual({ frames: 3000, events: 3000 });
    await importJsonl(join(dir, 'a.jsonl'), join(dir, 'b.obrec'));
    const [a, b] = await Promise.all([readFile(first), readFile(join(dir, 'b.obrec'))]);
    expect(b.equals(a)).toBe(true);
  });

  it('omits the meta line for empty meta and respects backpressure', async () => {
    const input = join(dir, 'in.jsonl');
    const pad = 'p'.repeat(8000);
    const lines = Array.from(
      { length: 300 },
      (_, i) => `{"t":${1000 + i},"msgs":[{"ev":"A","sym":"X","v":${i},"pad":"${pad}"}]}`,
    );
    await writeFile(input, lines.join('\n'));
    await importJsonl(input, join(dir, 'a.obrec'));
    let text = '';
    const slow = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _encoding, callback) {
        text += chunk.toString();
        setTimeout(callback, 5);
      },
    });
    let writes = 0;
    let whileFull = 0;
    const write = slow.write.bind(slow);
    slow.write = ((chunk: string) => {
      writes += 1;
      if (slow.writableNeedDrain) whileFull += 1;
      return write(chunk);
    }) as typeof slow.write;
    await exportJsonl(join(dir, 'a.obrec'), slow);
    await new Promise<void>((resolve) => slow.end(resolve));
    expect(text).toBe(`${lines.join('\n')}\n`);
    expect(writes).toBeGreaterThan(1);
    expect(whileFull).toBe(0);
  });

  it('fails on a missing input', async () => {
    await expect(importJsonl(join(dir, 'none.jsonl'), join(dir, 'a.obrec'))).rejects.toThrow(
      /ENOENT/,
    );
  });

  it('names the line of a bad input, and writes no output', async () => {
    const good = '{"t":1000,"msgs":[]}';
    const cases: [string[], RegExp][] = [
      [[good, 'nope'], /:2: not JSON/],
      [[good, '', '[1,2]'], /:3: not a JSON object/],
      [[good, '{"msgs":[]}'], /:2: no receive time "t"/],
      [[good, '{"t":"1000","msgs":[]}'], /:2: no receive time "t"/],
      [[good, '{"t":1001,"msgs":{}}'], /:2: no "msgs" array/],
      [
        [good, '{"t":999.9,"msgs":[]}'],
        /:2: receive time 999.9 ms is before the previous line's 1000 ms/,
      ],
      [[good, '{"meta":{}}'], /:2: a meta line is only allowed first/],
      [['{"meta":{"date":"June"}}', good], /:1: meta\.date/],
    ];
    for (const [lines, error] of cases) {
      const input = join(dir, 'bad.jsonl');
      await writeFile(input, lines.join('\n'));
      await expect(importJsonl(input, join(dir, 'bad.obrec'))).rejects.toThrow(error);
      await expect(access(join(dir, 'bad.obrec'))).rejects.toThrow(/ENOENT/);
    }
  });

  it('skips and counts bad lines when asked', async () => {
    const input = join(dir, 'in.jsonl');
    await writeFile(
      input,
      ['{"t":1,"msgs":[]}', 'x', '{"t":0,"msgs":[]}', '{"t":2,"msgs":[1]}'].join('\n'),
    );
    const result = await importJsonl(input, join(dir, 'a.obrec'), { skipBad: true });
    expect(result).toEqual({ frames: 2, events: 1, lines: 4, skipped: 2 });
  });

  it('finds the raw text of a top-level member only', () => {
    const text = ' { "x" : {"msgs":1}, "s":"a\\"]}msgs", "n": -1.5e3 ,"msgs" : [ {"a":"]"} ] } ';
    expect(rawMember(text, 'msgs')).toBe('[ {"a":"]"} ]');
    expect(rawMember(text, 'n')).toBe('-1.5e3');
    expect(rawMember(text, 's')).toBe('"a\\"]}msgs"');
    expect(rawMember(text, 'y')).toBeUndefined();
  });
});
