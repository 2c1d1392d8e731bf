/**
 * The JSONL capture interchange (DESIGN.md section 5, replay/FORMAT.md): an optional first line
 * `{"meta":{…}}`, then one `{"t":<receive time, epoch ms>,"msgs":[…]}` per frame. Lossless both
 * ways: the `msgs` text is kept byte for byte, never parsed and re-serialised.
 */
import { isUtf8 } from 'node:buffer';
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import {
  ConfigError,
  STATUS_BIT,
  createRecordingWriter,
  openRecording,
  typeBit,
  type FrameInfo,
  type RecordingMeta,
  type RecordingWriter,
} from '../core/index.ts';

/** Options of {@link importJsonl}. */
export interface ImportJsonlOptions {
  /** Header `source` of the recording (default `jsonl`). */
  source?: string;
  /** Replace an existing output file. */
  overwrite?: boolean;
  /** Skip (and count) bad lines instead of failing on the first one. */
  skipBad?: boolean;
}

/** What an import read and wrote. */
export interface ImportJsonlResult {
  frames: number;
  events: number;
  /** Lines read, blank ones and the meta line included. */
  lines: number;
  /** Bad lines skipped (always 0 without `skipBad`). */
  skipped: number;
}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);

function skipWs(text: string, i: number): number {
  while (WS.has(text.charCodeAt(i))) i++;
  return i;
}

/** End (exclusive) of the JSON string starting at `text[i] === '"'`. */
function stringEnd(text: string, i: number): number {
  for (let j = i + 1; j < text.length; j++) {
    const c = text.charCodeAt(j);
    if (c === 0x5c) j++;
    else if (c === 0x22) return j + 1;
  }
  return text.length;
}

/** End (exclusive) of the JSON value starting at `text[i]`. */
function valueEnd(text: string, i: number): number {
  const first = text.charCodeAt(i);
  if (first === 0x22) return stringEnd(text, i);
  if (first !== 0x5b && first !== 0x7b) {
    let j = i;
    while (j < text.length && !',]}'.includes(text[j]!) && !WS.has(text.charCodeAt(j))) j++;
    return j;
  }
  let depth = 0;
  for (let j = i; j < text.length; j++) {
    const c = text.charCodeAt(j);
    if (c === 0x22) j = stringEnd(text, j) - 1;
    else if (c === 0x5b || c === 0x7b) depth++;
    else if ((c === 0x5d || c === 0x7d) && --depth === 0) return j + 1;
  }
  return text.length;
}

/**
 * The raw text of the value of the top-level `key` of a JSON object's text, which must already
 * be known to be valid JSON. The last occurrence wins, as in `JSON.parse`.
 */
export function rawMember(text: string, key: string): string | undefined {
  let found: string | undefined;
  let i = skipWs(text, 0) + 1;
  for (;;) {
    i = skipWs(text, i);
    if (text[i] !== '"') return found;
    const nameEnd = stringEnd(text, i);
    const name = JSON.parse(text.slice(i, nameEnd)) as string;
    const start = skipWs(text, skipWs(text, nameEnd) + 1);
    const end = valueEnd(text, start);
    if (name === key) found = text.slice(start, end);
    i = skipWs(text, end);
    if (text[i] === ',') i++;
  }
}

/** A parsed data line (with the frame's info), or the reason it is bad. */
function parseLine(
  line: string,
): ({ timeUs: number; msgs: string } & FrameInfo) | { meta: unknown } | string {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    return `not JSON (${(error as Error).message})`;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return 'not a JSON object';
  }
  const { t, msgs, meta } = value as { t?: unknown; msgs?: unknown; meta?: unknown };
  if (meta !== undefined && t === undefined) return { meta };
  if (typeof t !== 'number' || !Number.isFinite(t) || t < 0) return 'no receive time "t"';
  if (!Array.isArray(msgs)) return 'no "msgs" array';
  // What describeFrame would say of the raw text, without parsing it a second time.
  let types = 0;
  for (const message of msgs as unknown[]) {
    types |= typeBit(
      typeof message === 'object' && message !== null
        ? (message as { ev?: unknown }).ev
        : undefined,
    );
  }
  return {
    timeUs: Math.round(t * 1000),
    msgs: rawMember(line, 'msgs')!,
    events: msgs.length,
    types,
  };
}

/**
 * Imports a JSONL capture into a new recording, streaming. Receive times become µs
 * (`Math.round(t * 1000)`); each `msgs` array is stored exactly as written. A bad line (not
 * JSON, no `t`, no `msgs` array, a `t` before the previous one, a misplaced meta line) fails the
 * import with its line number and removes the output, unless `skipBad` counts and skips it.
 * Blank lines are ignored.
 */
export async function importJsonl(
  input: string,
  output: string,
  options: ImportJsonlOptions = {},
): Promise<ImportJsonlResult> {
  const result: ImportJsonlResult = { frames: 0, events: 0, lines: 0, skipped: 0 };
  const lines = createInterface({ input: createReadStream(input), crlfDelay: Infinity });
  const open = (meta: RecordingMeta) =>
    createRecordingWriter(output, meta, {
      source: options.source ?? 'jsonl',
      overwrite: options.overwrite,
    });
  let writer: RecordingWriter | undefined;
  let lastUs = 0;
  try {
    for await (const line of lines) {
      result.lines += 1;
      if (line.trim() === '') continue;
      let parsed = parseLine(line);
      if (typeof parsed === 'object' && 'meta' in parsed && writer !== undefined) {
        parsed = 'a meta line is only allowed first';
      }
      if (typeof parsed === 'object' && 'timeUs' in parsed && parsed.timeUs < lastUs) {
        parsed = `receive time ${parsed.timeUs / 1000} ms is before the previous line's ${lastUs / 1000} ms`;
      }
      if (typeof parsed === 'string') {
        if (options.skipBad !== true) throw new Error(`${input}:${result.lines}: ${parsed}`);
        result.skipped += 1;
        continue;
      }
      if ('meta' in parsed) {
        writer = await open(parsed.meta as RecordingMeta).catch((error: unknown) => {
          if (!(error instanceof ConfigError)) throw error;
          throw new Error(`${input}:${result.lines}: ${error.message}`, { cause: error });
        });
        continue;
      }
      writer ??= await open({});
      const { timeUs, msgs, events, types } = parsed;
      if (!writer.write({ timeUs, data: Buffer.from(msgs), events, types })) await writer.drain();
      lastUs = timeUs;
      result.frames += 1;
      result.events += events;
    }
    writer ??= await open({});
    await writer.close();
    return result;
  } catch (error) {
    lines.close();
    if (writer !== undefined) {
      await writer.abort();
      await rm(output, { force: true });
    }
    throw error;
  }
}

/**
 * Writes a recording as JSONL to `out` (which it leaves open), waiting for `drain` when `out`
 * asks it to: the meta line when the meta is not empty, then `{"t":<ms>,"msgs":<raw frame>}`
 * per frame. A frame that is not UTF-8 JSON text cannot be written as JSONL and fails the export.
 */
export async function exportJsonl(
  recording: string,
  out: NodeJS.WritableStream,
): Promise<{ frames: number; events: number }> {
  const source = await openRecording(recording);
  const counts = { frames: 0, events: 0 };
  try {
    if (Object.keys(source.meta).length > 0) {
      if (!out.write(`{"meta":${JSON.stringify(source.meta)}}\n`)) await once(out, 'drain');
    }
    for await (const chunk of source.chunks()) {
      let text = '';
      for (const frame of chunk) {
        const raw = frame.data.toString('utf8');
        if (!isUtf8(frame.data) || ((frame.types & STATUS_BIT) !== 0 && !isJsonArray(raw))) {
          throw new Error(
            `${recording}: frame ${counts.frames} is not a JSON array, so it has no JSONL form`,
          );
        }
        text += `{"t":${frame.timeUs / 1000},"msgs":${raw}}\n`;
        counts.frames += 1;
        counts.events += frame.events;
      }
      if (!out.write(text)) await once(out, 'drain');
    }
  } finally {
    await source.close();
  }
  return counts;
}

function isJsonArray(text: string): boolean {
  try {
    return Array.isArray(JSON.parse(text));
  } catch {
    return false;
  }
}
