import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRecordingWriter, type RecordingTotals } from '../core/index.ts';
import { synthesize, type SynthOptions } from './synth.ts';

/**
 * The bundled market-open scenario: 90 seconds around 09:30 ET of a 2,000-symbol market, the
 * opening burst peaking at 20,000 trades/s. It is generated on first use, deterministically, so
 * the repository ships no data and the lab needs no download; its SHA-256 is pinned below.
 */
export const MARKET_OPEN: SynthOptions = {
  date: '2026-11-23',
  symbols: 2000,
  from: '09:29:30',
  to: '09:31:00',
  seed: 930,
  peakTradesPerSec: 20_000,
  baselineTradesPerSec: 6_000,
};

/** SHA-256 of the scenario's file: a different value means the generator's output changed. */
export const MARKET_OPEN_SHA256 =
  'f53ceac45a564da7b3bf1a3b58449626d10b1821f1dfc7cce747120fcf10f545';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Where the bundled scenario is kept once generated. */
export const MARKET_OPEN_PATH = join(ROOT, '.cache', 'scenarios', 'market-open.obrec');

/** Writes a synthetic session to `path` as a recording; resolves with its totals. */
export async function writeSynth(
  path: string,
  options: SynthOptions,
  overwrite = false,
): Promise<RecordingTotals> {
  const session = synthesize(options);
  const writer = await createRecordingWriter(path, session.meta, {
    source: 'openbell synth',
    overwrite,
  });
  try {
    for (const frame of session.frames()) if (!writer.write(frame)) await writer.drain();
    return await writer.close();
  } catch (error) {
    await writer.abort();
    throw error;
  }
}

/** SHA-256 of a file, streamed. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/**
 * Returns the path of the bundled scenario, generating it first when it is missing or not the
 * pinned bytes (an interrupted earlier generation, or an older generator).
 */
export async function ensureMarketOpen(path = MARKET_OPEN_PATH): Promise<string> {
  const exists = await stat(path).then(
    () => true,
    () => false,
  );
  if (exists && (await sha256File(path)) === MARKET_OPEN_SHA256) return path;
  await mkdir(dirname(path), { recursive: true });
  const partial = `${path}.partial`;
  await rm(partial, { force: true });
  await writeSynth(partial, MARKET_OPEN, true);
  const digest = await sha256File(partial);
  if (digest !== MARKET_OPEN_SHA256)
    throw new Error(
      `the generated market-open scenario has SHA-256 ${digest}, not the pinned ${MARKET_OPEN_SHA256}: the generator's output changed`,
    );
  await rename(partial, path);
  return path;
}
