import * as hdr from 'hdr-histogram-js';

/** Percentiles of a latency histogram, in ms (µs resolution); null when nothing was recorded. */
export interface LatencySummary {
  count: number;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  p999: number | null;
  max: number | null;
  mean: number | null;
}

/** Messages by envelope `type`; `unparsable` for anything that is not an envelope. */
export type MessageCounts = Record<
  'snapshot' | 'update' | 'ack' | 'error' | 'heartbeat' | 'other' | 'unparsable',
  number
>;

/** `seq` jumps (messages missed) and regressions, per channel and client, summed. */
export interface GapCounts {
  /** Jumps seen. */
  total: number;
  /** Messages the jumps skipped. */
  missed: number;
  /** A `seq` that did not advance. */
  outOfOrder: number;
  byChannel: Record<string, number>;
}

/** A client's place in the tally: the last `seq` seen per channel (`""`: the connection's). */
export interface TallyClient {
  seqs: Map<string, number>;
}

/** What a message meant for its client's handshake. */
export type TallyOutcome = 'subscribed' | 'subscribe_failed' | undefined;

/** The `id` of every client's subscribe message. */
export const SUBSCRIBE_ID = 1;

/** Counters of every client's messages; {@link SwarmTally.record} is the per-message hot path. */
export interface SwarmTally {
  /** Messages received while set count towards latency and the window's rates. */
  measuring: boolean;
  /** Counts one message (its UTF-8 text) received at epoch ms `receivedAtMs`. */
  record(client: TallyClient, data: Buffer, receivedAtMs: number): TallyOutcome;
  readonly messages: MessageCounts;
  readonly gaps: GapCounts;
  /** `update` messages by channel (all clients, the whole run). */
  readonly updatesByChannel: Record<string, number>;
  /** `error` messages by `code`. */
  readonly errors: Record<string, number>;
  /** Updates and snapshots received while measuring. */
  readonly window: { updates: number; snapshots: number };
  /** Delivery latency of updates while measuring, µs. */
  readonly latency: hdr.Histogram;
  /** The same since the last {@link SwarmTally.takeRecent}: a progress line's interval. */
  takeRecent(): LatencySummary;
  /** Latencies below zero (clocks disagreeing), recorded as 0. */
  readonly negativeLatencies: number;
}

/** Largest latency recorded (a minute, in µs); anything later is recorded as this. */
export const MAX_LATENCY_US = 60_000_000;

/** A histogram of µs values up to {@link MAX_LATENCY_US}, 3 significant digits. */
export function createLatencyHistogram(): hdr.Histogram {
  return hdr.build({
    lowestDiscernibleValue: 1,
    highestTrackableValue: MAX_LATENCY_US,
    numberOfSignificantValueDigits: 3,
  });
}

/**
 * Messages missed between the last `seq` seen on a channel (undefined: none yet, so 1 is next)
 * and `seq`: 0 when in order, -1 when `seq` did not advance.
 */
export function seqGap(last: number | undefined, seq: number): number {
  const expected = (last ?? 0) + 1;
  if (seq === expected) return 0;
  return seq > expected ? seq - expected : -1;
}

interface Envelope {
  type?: unknown;
  channel?: unknown;
  seq?: unknown;
  ts?: unknown;
  data?: { op?: unknown; id?: unknown; code?: unknown } | null;
}

const UPDATE_HEAD = Buffer.from('{"type":"update","channel":"');
const TS_KEY = Buffer.from(',"ts":');
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const COMMA = 0x2c;

/** The decimal digits of `data` from `at`: [value, end]; end === at when there are none. */
function readDigits(data: Buffer, at: number): [number, number] {
  let value = 0;
  let end = at;
  for (; end < data.length && end - at < 16; end++) {
    const c = data[end]!;
    if (c < DIGIT_0 || c > DIGIT_9) break;
    value = value * 10 + (c - DIGIT_0);
  }
  return [value, end];
}

/**
 * Reads an `update` of one of `heads` without parsing it: the feed writes updates as
 * `{"type":"update","channel":"<ch>","seq":N,"ts":T,"data":…}`, and the swarm only needs the
 * channel, seq and ts. JSON.parse of a 20-row board update cost ~11 µs, a third of the driver's
 * time per message, and the driver shares the machine with the feed it measures; this costs
 * ~0.2 µs. Anything else (another shape, a channel not subscribed) returns undefined and takes
 * the JSON.parse path.
 */
function scanUpdate(
  data: Buffer,
  heads: readonly Buffer[],
): { index: number; seq: number; ts: number } | undefined {
  const n = UPDATE_HEAD.length;
  if (data.length < n + 16 || data.compare(UPDATE_HEAD, 0, n, 0, n) !== 0) return undefined;
  let index = -1;
  for (let k = 0; k < heads.length; k++) {
    const head = heads[k]!;
    if (
      n + head.length <= data.length &&
      data.compare(head, 0, head.length, n, n + head.length) === 0
    ) {
      index = k;
      break;
    }
  }
  if (index < 0) return undefined;
  const [seq, seqEnd] = readDigits(data, n + heads[index]!.length);
  const tsAt = seqEnd + TS_KEY.length;
  if (tsAt > data.length || data.compare(TS_KEY, 0, TS_KEY.length, seqEnd, tsAt) !== 0)
    return undefined;
  const [ts, tsEnd] = readDigits(data, tsAt);
  if (tsEnd === tsAt || data[tsEnd] !== COMMA) return undefined;
  scanned.index = index;
  scanned.seq = seq;
  scanned.ts = ts;
  return scanned;
}
// Reused by every scan: the hot path allocates nothing.
const scanned = { index: 0, seq: 0, ts: 0 };

/**
 * Creates the counters. `channels` are the channels subscribed to: their updates are read
 * without JSON.parse (see {@link scanUpdate}); every other message is parsed once.
 */
export function createSwarmTally(channels: readonly string[] = []): SwarmTally {
  const heads = channels.map((channel) => Buffer.from(`${channel}","seq":`));
  const messages: MessageCounts = {
    snapshot: 0,
    update: 0,
    ack: 0,
    error: 0,
    heartbeat: 0,
    other: 0,
    unparsable: 0,
  };
  const gaps: GapCounts = { total: 0, missed: 0, outOfOrder: 0, byChannel: {} };
  const errors: Record<string, number> = {};
  const updatesByChannel: Record<string, number> = {};
  const window = { updates: 0, snapshots: 0 };
  const latency = createLatencyHistogram();
  const recent = createLatencyHistogram();
  let negativeLatencies = 0;

  const checkSeq = (client: TallyClient, channel: string, seq: number): void => {
    const gap = seqGap(client.seqs.get(channel), seq);
    if (gap > 0) {
      gaps.total++;
      gaps.missed += gap;
      gaps.byChannel[channel] = (gaps.byChannel[channel] ?? 0) + 1;
    } else if (gap < 0) gaps.outOfOrder++;
    client.seqs.set(channel, seq);
  };

  const recordLatency = (ms: number): void => {
    let us = Math.round(ms * 1000);
    if (us < 0) {
      negativeLatencies++;
      us = 0;
    }
    const value = us > MAX_LATENCY_US ? MAX_LATENCY_US : us;
    latency.recordValue(value);
    recent.recordValue(value);
  };

  const update = (client: TallyClient, channel: string, seq: number, ts: unknown, at: number) => {
    checkSeq(client, channel, seq);
    messages.update++;
    updatesByChannel[channel] = (updatesByChannel[channel] ?? 0) + 1;
    if (tally.measuring && typeof ts === 'number') {
      window.updates++;
      recordLatency(at - ts);
    }
  };

  const tally: SwarmTally = {
    measuring: false,
    record(client, data, receivedAtMs) {
      const fast = scanUpdate(data, heads);
      if (fast !== undefined) {
        update(client, channels[fast.index]!, fast.seq, fast.ts, receivedAtMs);
        return undefined;
      }
      let envelope: Envelope | null;
      try {
        envelope = JSON.parse(data.toString()) as Envelope | null;
      } catch {
        // Not JSON: counted below; there is nothing else to learn from it.
        envelope = null;
      }
      if (
        typeof envelope !== 'object' ||
        envelope === null ||
        typeof envelope.channel !== 'string' ||
        typeof envelope.seq !== 'number'
      ) {
        messages.unparsable++;
        return undefined;
      }
      if (envelope.type === 'update') {
        update(client, envelope.channel, envelope.seq, envelope.ts, receivedAtMs);
        return undefined;
      }
      checkSeq(client, envelope.channel, envelope.seq);
      const body = envelope.data;
      switch (envelope.type) {
        case 'snapshot':
          messages.snapshot++;
          if (tally.measuring) window.snapshots++;
          return undefined;
        case 'ack':
          messages.ack++;
          return body?.op === 'subscribe' && body.id === SUBSCRIBE_ID ? 'subscribed' : undefined;
        case 'error': {
          messages.error++;
          const code = typeof body?.code === 'string' ? body.code : 'unknown';
          errors[code] = (errors[code] ?? 0) + 1;
          return body?.id === SUBSCRIBE_ID ? 'subscribe_failed' : undefined;
        }
        case 'heartbeat':
          messages.heartbeat++;
          return undefined;
        default:
          messages.other++;
          return undefined;
      }
    },
    messages,
    gaps,
    updatesByChannel,
    errors,
    window,
    latency,
    takeRecent() {
      const summary = summarizeLatency(recent);
      recent.reset();
      return summary;
    },
    get negativeLatencies() {
      return negativeLatencies;
    },
  };
  return tally;
}

/** Percentiles of a histogram of µs values, in ms rounded to the µs. */
export function summarizeLatency(histogram: hdr.Histogram): LatencySummary {
  const count = histogram.totalCount;
  const ms = (us: number): number | null => (count === 0 ? null : Math.round(us) / 1000);
  return {
    count,
    p50: ms(histogram.getValueAtPercentile(50)),
    p90: ms(histogram.getValueAtPercentile(90)),
    p99: ms(histogram.getValueAtPercentile(99)),
    p999: ms(histogram.getValueAtPercentile(99.9)),
    max: ms(histogram.maxValue),
    mean: ms(histogram.mean),
  };
}

/** Short reason a connection attempt failed, usable as a counter key. */
export function classifyConnectError(error: Error & { code?: unknown }): string {
  const status = /Unexpected server response: (\d{3})/.exec(error.message);
  if (status !== null) return `http_${status[1]}`;
  if (/handshake has timed out/i.test(error.message)) return 'timeout';
  if (/subprotocol/i.test(error.message)) return 'subprotocol';
  return typeof error.code === 'string' ? error.code : 'error';
}
