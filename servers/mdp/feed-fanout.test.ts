import { describe, expect, it } from 'vitest';
import { encodeUpdateParts, frameUpdates } from './feed-fanout.ts';

/** Splits unmasked frames into [first byte, payload text]. */
function readFrames(bytes: Buffer): [number, string][] {
  const frames: [number, string][] = [];
  let at = 0;
  while (at < bytes.length) {
    const first = bytes[at]!;
    let length = bytes[at + 1]!;
    at += 2;
    if (length === 126) {
      length = bytes.readUInt16BE(at);
      at += 2;
    } else if (length === 127) {
      length = Number(bytes.readBigUInt64BE(at));
      at += 8;
    }
    frames.push([first, bytes.toString('utf8', at, at + length)]);
    at += length;
  }
  return frames;
}

describe('frameUpdates', () => {
  it('frames each update as one final text frame with its own seq, in every length range', () => {
    const small = encodeUpdateParts('symbol:A', 1748871005500, '{}');
    const medium = encodeUpdateParts(
      'board:gainers',
      1748871005500,
      JSON.stringify({ rows: 'x'.repeat(3000) }),
    );
    const large = encodeUpdateParts(
      'board:volume',
      1,
      JSON.stringify({ note: 'é'.repeat(40_000) }),
    );
    const seqs = [0, 9, 10, 123_456_789];
    const parts = [small, medium, large, small];
    // Trailing entries beyond `count` are ignored (the feed reuses its arrays).
    const out = frameUpdates([...parts, medium], [...seqs, 5], parts.length);
    const bytes = Buffer.concat(out.chunks);
    expect(bytes.length).toBe(out.bytes);
    // The rows are the shared tail itself, never a copy.
    expect(out.chunks[3]).toBe(medium.tail);
    const frames = readFrames(bytes);

    expect(frames.map(([first]) => first)).toEqual([0x81, 0x81, 0x81, 0x81]);
    const texts = frames.map(([, text]) => text);
    expect(texts[0]).toBe(
      '{"type":"update","channel":"symbol:A","seq":0,"ts":1748871005500,"data":{}}',
    );
    expect(JSON.parse(texts[1]!)).toEqual({
      type: 'update',
      channel: 'board:gainers',
      seq: 9,
      ts: 1748871005500,
      data: { rows: 'x'.repeat(3000) },
    });
    expect(JSON.parse(texts[2]!)).toMatchObject({ seq: 10, data: { note: 'é'.repeat(40_000) } });
    expect(Buffer.byteLength(texts[2]!)).toBeGreaterThan(65_536);
    expect(JSON.parse(texts[3]!)).toMatchObject({ channel: 'symbol:A', seq: 123_456_789 });
  });

  it('is empty for no updates', () => {
    expect(frameUpdates([], [], 0)).toEqual({ chunks: [], bytes: 0 });
  });
});
