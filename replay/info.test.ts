import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createRecordingWriter, describeFrame } from '../core/index.ts';
import { formatInfo, recordingInfo } from './info.ts';

const OPEN_US = Date.UTC(2025, 5, 2, 13, 30) * 1000; // 09:30:00 New York (EDT)

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'openbell-info-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function write(path: string, frames: [number, string][]): Promise<void> {
  const writer = await createRecordingWriter(path, { date: '2025-06-02' }, { source: 'test' });
  for (const [timeUs, text] of frames) {
    writer.write({ timeUs, data: Buffer.from(text), ...describeFrame(text) });
  }
  await writer.close();
}

describe('recordingInfo', () => {
  it('counts types, symbols and the peak second', async () => {
    const path = join(dir, 'a.obrec');
    await write(path, [
      [OPEN_US - 2_500_000, '[{"ev":"status","status":"connected"}]'],
      [OPEN_US + 100, '[{"ev":"T","sym":"AAPL"},{"ev":"T","sym":"MSFT"},{"ev":"Q","sym":"AAPL"}]'],
      [
        OPEN_US + 999_999,
        '[{"ev":"LULD","T":"GME","t":1748871000123456789},{"ev":"A","sym":"AAPL"}]',
      ],
      [OPEN_US + 1_000_000, '[{"ev":"NOI","T":"IBM"},{"ev":"X"},{"sym":"Z"}]'],
      [OPEN_US + 1_500_000, 'garbage'],
    ]);
    const info = await recordingInfo(path);
    expect(info).toMatchObject({
      source: 'test',
      date: '2025-06-02',
      indexed: true,
      torn: undefined,
      frames: 5,
      events: 10,
      eventsByType: { A: 1, T: 2, Q: 1, LULD: 1, NOI: 1, '?': 1, X: 1, status: 1 },
      unparsable: 1,
      symbols: 5,
      durationSeconds: 4,
      peak: { events: 5, atUs: OPEN_US, iso: '2025-06-02T13:30:00.000Z', newYork: '09:30:00' },
    });
    expect(Object.keys(info.eventsByType)).toEqual([
      'A',
      'T',
      'Q',
      'LULD',
      'NOI',
      '?',
      'X',
      'status',
    ]);
    expect(info.bytesPerEvent).toBeCloseTo(info.fileBytes / 10);

    const text = formatInfo(info);
    expect(text).toContain(
      'peak         5 events/s at 09:30:00 New York (2025-06-02T13:30:00.000Z)',
    );
    expect(text).toMatch(/^by type {6}A 1, T 2, Q 1, LULD 1, NOI 1, \? 1, X 1, status 1$/m);
    expect(text).toContain('torn tail    none');
    expect(text).toContain('unparsable   1 frames');
  });

  it('summarises an empty recording', async () => {
    const path = join(dir, 'e.obrec');
    await write(path, []);
    const info = await recordingInfo(path);
    expect(info).toMatchObject({
      frames: 0,
      events: 0,
      peak: undefined,
      bytesPerEvent: 0,
      symbols: 0,
    });
    expect(formatInfo(info)).toContain('duration     0 s');
  });
});
