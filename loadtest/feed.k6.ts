/**
 * Trader-feed fan-out suite for k6 (servers/mdp/FEED.md): ramps up VUS virtual traders, each
 * holding one feed WebSocket for SESSION_SECONDS, subscribed to CHANNELS, then reconnecting. It
 * measures delivery latency (receive time − envelope `ts`), `seq` breaks per channel, server
 * `error` messages and closes the client did not ask for. How to run it: loadtest/README.md.
 */
import { check, sleep } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import type { Options } from 'k6/options';
import { connect } from 'k6/ws';
import type { Socket } from 'k6/ws';
import { env, envInt } from './k6-env.ts';

const config = {
  url: env('FEED_URL', 'ws://127.0.0.1:8080/ws'),
  /** Without a token only a feed started with --feed-insecure lets the VUs in. */
  token: env('FEED_TOKEN', ''),
  channels: env('CHANNELS', 'board:gainers,board:volume,board:trades')
    .split(',')
    .map((channel) => channel.trim())
    .filter((channel) => channel !== ''),
  /** Rows per board; 0 leaves it to the feed's default. */
  top: envInt('TOP', 0, 0),
  // The feed admits 100 connections per client address (FEED_MAX_CONNECTIONS_PER_IP) and 10 per
  // token subject (FEED_MAX_CONNECTIONS_PER_SUBJECT; every VU shares FEED_TOKEN) by default.
  vus: envInt('VUS', 50, 1),
  ramp: env('RAMP', '30s'),
  duration: env('DURATION', '1m'),
  sessionSeconds: envInt('SESSION_SECONDS', 30, 1),
};

// An iteration is one session; the grace outlasts it, so k6 never cuts a socket it would then
// report as an unexpected close.
const grace = `${config.sessionSeconds + 10}s`;

/** Ramp to VUS traders, hold them for DURATION, ramp down; thresholds are the pass criteria. */
export const options: Options = {
  scenarios: {
    feed: {
      executor: 'ramping-vus',
      startVUs: 0,
      stages: [
        { duration: config.ramp, target: config.vus },
        { duration: config.duration, target: config.vus },
        { duration: config.ramp, target: 0 },
      ],
      gracefulRampDown: grace,
      gracefulStop: grace,
    },
  },
  thresholds: {
    feed_delivery_latency: ['p(95)<50', 'p(99)<100'],
    feed_seq_gaps: ['count==0'],
    feed_unexpected_closes: ['count==0'],
    feed_error_messages: ['count==0'],
    feed_updates: ['count>0'],
    checks: ['rate==1'],
  },
};

const deliveryLatency = new Trend('feed_delivery_latency', true);
const seqGaps = new Counter('feed_seq_gaps');
const unexpectedCloses = new Counter('feed_unexpected_closes');
const errorMessages = new Counter('feed_error_messages');
const updates = new Counter('feed_updates');

// k6 runs this file on its own, without Node or npm packages, so the envelope of
// core/feed-protocol.ts is restated rather than imported.
interface Envelope {
  type: string;
  channel: string;
  seq: number;
  ts: number;
  data: unknown;
}

interface Session {
  /** Set just before the script closes the socket itself. */
  closing: boolean;
  acked: boolean;
  lastSeq: Map<string, number>;
  snapshots: Set<string>;
}

const SUBSCRIBE_ID = 1;

function field(data: unknown, key: string): unknown {
  return typeof data === 'object' && data !== null
    ? (data as Record<string, unknown>)[key]
    : undefined;
}

function parseEnvelope(text: string): Envelope | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined; // counted by the caller as a bad envelope
  }
  const { type, channel, seq, ts, data } = (value ?? {}) as Record<string, unknown>;
  if (typeof type !== 'string' || typeof channel !== 'string') return undefined;
  if (typeof seq !== 'number' || typeof ts !== 'number') return undefined;
  return { type, channel, seq, ts, data };
}

/** Any break in a channel's +1 sequence (a missed, repeated or reordered message) is a gap. */
function trackSeq(session: Session, envelope: Envelope): void {
  const { channel, seq } = envelope;
  const expected = (session.lastSeq.get(channel) ?? 0) + 1;
  if (seq !== expected) seqGaps.add(1, { channel });
  session.lastSeq.set(channel, seq);
  if (envelope.type === 'snapshot') session.snapshots.add(channel);
}

function onMessage(session: Session, text: string): void {
  const receivedMs = Date.now();
  const envelope = parseEnvelope(text);
  if (envelope === undefined) {
    errorMessages.add(1, { code: 'bad_envelope' });
    return;
  }
  // Acks, errors and heartbeats share channel "" and its own seq; only data channels are tracked.
  if (envelope.channel !== '') trackSeq(session, envelope);
  switch (envelope.type) {
    case 'snapshot':
    case 'update':
      deliveryLatency.add(receivedMs - envelope.ts, { type: envelope.type });
      if (envelope.type === 'update') updates.add(1);
      break;
    case 'ack':
      if (
        field(envelope.data, 'op') === 'subscribe' &&
        field(envelope.data, 'id') === SUBSCRIBE_ID
      ) {
        session.acked = true;
      }
      break;
    case 'error':
      errorMessages.add(1, { code: String(field(envelope.data, 'code')) });
      break;
  }
}

function runSession(socket: Socket, session: Session): void {
  socket.on('open', () => {
    const subscribe = {
      op: 'subscribe',
      id: SUBSCRIBE_ID,
      channels: config.channels,
      ...(config.top > 0 ? { top: config.top } : {}),
    };
    socket.send(JSON.stringify(subscribe));
    socket.setTimeout(() => {
      session.closing = true;
      socket.close(1000);
    }, config.sessionSeconds * 1000);
  });
  socket.on('message', (text) => onMessage(session, text));
  socket.on('close', (code) => {
    if (!session.closing) unexpectedCloses.add(1, { code: String(code) });
  });
}

function headerValue(headers: Record<string, string>, name: string): string | undefined {
  const key = Object.keys(headers).find((k) => k.toLowerCase() === name);
  return key === undefined ? undefined : headers[key];
}

/** One trader session: connect with the token in the subprotocol header, subscribe, hold, close. */
export default function (): void {
  const protocols = ['openbell.v1', ...(config.token === '' ? [] : [`bearer.${config.token}`])];
  const session: Session = {
    closing: false,
    acked: false,
    lastSeq: new Map(),
    snapshots: new Set(),
  };
  const response = connect(
    config.url,
    { headers: { 'Sec-WebSocket-Protocol': protocols.join(', ') } },
    (socket) => runSession(socket, session),
  );
  const upgraded = check(response, {
    'handshake: 101 with subprotocol openbell.v1': (r) =>
      r.status === 101 && headerValue(r.headers, 'sec-websocket-protocol') === 'openbell.v1',
  });
  if (!upgraded) {
    // A refused handshake returns at once; pause so a refusing feed is not hammered in a loop.
    sleep(1);
    return;
  }
  check(session, {
    'subscribe acked': (s) => s.acked,
    'a snapshot on every channel': (s) => config.channels.every((c) => s.snapshots.has(c)),
  });
}
