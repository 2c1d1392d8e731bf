/** `openbell record info`: what a recording holds, read in one streaming pass. */
import { EVENT_TYPES, newYorkOffsetMs, openRecording, type Recording } from '../core/index.ts';

/** The busiest second of receive time. */
export interface PeakSecond {
  /** Messages received in that second. */
  events: number;
  /** Start of the second, µs since the epoch. */
  atUs: number;
  /** Start of the second, ISO UTC. */
  iso: string;
  /** Start of the second, New York wall clock `HH:MM:SS`. */
  newYork: string;
}

/** Summary of one recording. */
export interface RecordingInfo {
  path: string;
  fileBytes: number;
  source: string;
  date: string | undefined;
  /** True when the file was closed cleanly (index found through the trailer). */
  indexed: boolean;
  torn: Recording['torn'];
  frames: number;
  /** Messages, statuses included. */
  events: number;
  /** Messages by `ev` (`status` included; `?` for a message without a string `ev`). */
  eventsByType: Record<string, number>;
  /** Frames that are not a JSON array (kept in the file, counted here only). */
  unparsable: number;
  /** Distinct tickers (`sym`, or `T` for LULD and NOI). */
  symbols: number;
  firstUs: number | undefined;
  lastUs: number | undefined;
  durationSeconds: number;
  peak: PeakSecond | undefined;
  /** File bytes per message (0 without messages). */
  bytesPerEvent: number;
}

/** `HH:MM:SS`, the New York wall-clock time of epoch `ms`. */
function newYorkClock(ms: number): string {
  return new Date(ms + newYorkOffsetMs(ms)).toISOString().slice(11, 19);
}

function countMessages(
  messages: unknown,
  byType: Map<string, number>,
  symbols: Set<string>,
): boolean {
  if (!Array.isArray(messages)) return false;
  for (const message of messages as unknown[]) {
    const { ev, sym, T } = (typeof message === 'object' && message !== null ? message : {}) as {
      ev?: unknown;
      sym?: unknown;
      T?: unknown;
    };
    const type = typeof ev === 'string' ? ev : '?';
    byType.set(type, (byType.get(type) ?? 0) + 1);
    const ticker = type === 'LULD' || type === 'NOI' ? T : sym;
    if (typeof ticker === 'string') symbols.add(ticker);
  }
  return true;
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Reads the whole recording once (parsing every frame) and summarises it. */
export async function recordingInfo(path: string): Promise<RecordingInfo> {
  const recording = await openRecording(path);
  const byType = new Map<string, number>();
  const symbols = new Set<string>();
  let unparsable = 0;
  let peak: { events: number; second: number } | undefined;
  let second = NaN;
  let inSecond = 0;
  try {
    for await (const chunk of recording.chunks()) {
      for (const frame of chunk) {
        if (!countMessages(parse(frame.data.toString('utf8')), byType, symbols)) unparsable += 1;
        const at = Math.floor(frame.timeUs / 1e6);
        if (at !== second) [second, inSecond] = [at, 0];
        inSecond += frame.events;
        if (peak === undefined || inSecond > peak.events) peak = { events: inSecond, second };
      }
    }
  } finally {
    await recording.close();
  }
  const { frames, events, firstUs, lastUs } = recording.totals;
  const known: string[] = EVENT_TYPES.filter((type) => byType.has(type));
  const others = [...byType.keys()].filter((type) => !known.includes(type)).sort();
  return {
    path,
    fileBytes: recording.size,
    source: recording.source,
    date: recording.meta.date,
    indexed: recording.indexed,
    torn: recording.torn,
    frames,
    events,
    eventsByType: Object.fromEntries([...known, ...others].map((t) => [t, byType.get(t)!])),
    unparsable,
    symbols: symbols.size,
    firstUs,
    lastUs,
    durationSeconds: firstUs === undefined || lastUs === undefined ? 0 : (lastUs - firstUs) / 1e6,
    peak:
      peak === undefined
        ? undefined
        : {
            events: peak.events,
            atUs: peak.second * 1e6,
            iso: new Date(peak.second * 1000).toISOString(),
            newYork: newYorkClock(peak.second * 1000),
          },
    bytesPerEvent: events > 0 ? recording.size / events : 0,
  };
}

const count = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const decimal = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });

function moment(us: number | undefined): string {
  if (us === undefined) return '-';
  const ms = us / 1000;
  return `${new Date(ms).toISOString()} (${newYorkClock(ms)} New York)`;
}

function bytes(n: number): string {
  if (n < 1024 * 1024) return `${decimal.format(n / 1024)} KiB`;
  return `${decimal.format(n / 1024 / 1024)} MiB`;
}

function duration(seconds: number): string {
  const clock = new Date(seconds * 1000).toISOString().slice(11, 19);
  return seconds < 60 ? `${decimal.format(seconds)} s` : `${clock} (${count.format(seconds)} s)`;
}

/** A short human table of {@link RecordingInfo}, one `label  value` line each. */
export function formatInfo(info: RecordingInfo): string {
  const rows: [string, string][] = [
    ['file', info.path],
    ['size', `${bytes(info.fileBytes)} (${count.format(info.fileBytes)} bytes)`],
    ['source', info.source === '' ? '-' : info.source],
    ['date', info.date ?? '-'],
    ['closed', info.indexed ? 'yes (indexed)' : 'no (index rebuilt by a scan)'],
    ['torn tail', info.torn ? `${info.torn.bytes} bytes at offset ${info.torn.offset}` : 'none'],
    ['frames', count.format(info.frames)],
    ['events', count.format(info.events)],
    [
      'by type',
      Object.entries(info.eventsByType)
        .map(([type, n]) => `${type} ${count.format(n)}`)
        .join(', ') || '-',
    ],
    ['symbols', count.format(info.symbols)],
    ['first', moment(info.firstUs)],
    ['last', moment(info.lastUs)],
    ['duration', duration(info.durationSeconds)],
    [
      'peak',
      info.peak
        ? `${count.format(info.peak.events)} events/s at ${info.peak.newYork} New York (${info.peak.iso})`
        : '-',
    ],
    ['bytes/event', decimal.format(info.bytesPerEvent)],
  ];
  if (info.unparsable > 0) rows.push(['unparsable', `${count.format(info.unparsable)} frames`]);
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`).join('\n');
}
