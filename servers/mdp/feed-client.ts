import type { Duplex } from 'node:stream';
import { WebSocket } from 'ws';
import {
  FEED_CLOSE,
  type FeedClaims,
  type FeedErrorCode,
  type FeedLimits,
} from '../../core/index.ts';
import { encodeUpdateParts, frameUpdates, type UpdateParts } from './feed-fanout.ts';
import type { FeedGroup } from './feed-hub.ts';
import type { FeedStats } from './feed.ts';

/** One trader's connection to the feed, with its authentication, rate limit and subscriptions. */
export interface Client {
  ws: WebSocket;
  /** The TCP socket under `ws`: a tick's updates are written to it directly, in one write. */
  socket: Duplex;
  ip: string;
  /** The tick slice whose tick sends this client's updates (FeedLimits.slices). */
  slice: number;
  claims: FeedClaims | 'insecure' | undefined;
  subs: Map<string, Sub>;
  seq: number;
  tokens: number;
  refilledAt: number;
  limitedSecond: number;
  limitedInSecond: number;
  alive: boolean;
  /**
   * When the unanswered probe was sent (performance.now() ms; 0: none): the client has not read
   * anything sent since, so it is at least this far behind.
   */
  probeSentAt: number;
  /** When the last probe was sent (performance.now() ms). */
  lastProbeAt: number;
  /** Pending: the authentication deadline, the token's expiry, the cut after a close. */
  handshake: NodeJS.Timeout | undefined;
  expiry: NodeJS.Timeout | undefined;
  cut: NodeJS.Timeout | undefined;
}

/** A client's subscription to one channel: its own `seq`, in its channel's group. */
export interface Sub {
  client: Client;
  group: FeedGroup<Sub>;
  seq: number;
  /** Its snapshot has been sent: updates may follow. */
  ready: boolean;
  /** Updates were held back (slow client): a snapshot is due once it drains. */
  stale: boolean;
}

/**
 * Payload of the probe pings: a pong that echoes it says the client has read everything sent
 * before the ping (the heartbeat's pings carry none).
 */
export const PROBE = Buffer.from('p');

/** Whether a pong answers a probe. */
export function isProbeAnswer(data: Buffer): boolean {
  return data.length === 1 && data[0] === PROBE[0];
}

/** Whether updates are held back for the client (a subscription awaits its fresh snapshot). */
export function holdsBack(client: Client): boolean {
  for (const sub of client.subs.values()) if (sub.stale) return true;
  return false;
}

/** How long a closed connection may take to finish its close handshake before it is cut. */
export const CLOSE_GRACE_MS = 2000;

/** Closes a client's connection, and cuts it if the close handshake does not finish in time. */
export function closeWith(client: Client, code: number, reason: string): void {
  const ws = client.ws;
  if (ws.readyState === WebSocket.CLOSED) return;
  ws.close(code, reason);
  // A peer that does not read never sees the close frame: cut it after a grace period.
  client.cut ??= setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
}

/** Options of {@link createClientWriter}. */
export interface ClientWriterOptions {
  limits: FeedLimits;
  stats: FeedStats;
  /** Subscriptions whose updates were held back: each gets a snapshot once its client drains. */
  stale: Set<Sub>;
}

/**
 * Writes to the feed's clients: conflates those behind (past the soft limit of unsent bytes, or a
 * probe unanswered for `maxLagMs`), and closes with 1013 those past the hard limit or behind for
 * `slowCloseMs` with updates held back.
 */
export interface ClientWriter {
  control: (client: Client, type: 'ack' | 'error' | 'heartbeat', data: unknown) => void;
  error: (
    client: Client,
    code: FeedErrorCode,
    message: string,
    extra?: Record<string, unknown>,
  ) => void;
  snapshot: (sub: Sub) => void;
  /**
   * Sends a slice's tick: the updates of its `changed` groups to its `clients`, a probe to those
   * due one, and the snapshots due to clients (of any slice) that caught up.
   */
  deliver: (changed: readonly FeedGroup<Sub>[], clients: Iterable<Client>) => void;
  /** Closes a client that cannot keep up (1013), counted as a slow close. */
  closeSlow: (client: Client) => void;
}

/** Creates the writer of a feed's clients; it counts what it sends in `stats`. */
export function createClientWriter(options: ClientWriterOptions): ClientWriter {
  const { limits, stats, stale } = options;
  // One probe per client and lag period: each costs the feed a read of its pong.
  const probeMs = limits.maxLagMs;

  const send = (client: Client, text: string): void => {
    const ws = client.ws;
    if (ws.readyState !== WebSocket.OPEN) return;
    if (ws.bufferedAmount > limits.hardLimitBytes) {
      closeSlow(client);
      return;
    }
    ws.send(text);
    stats.messagesOut++;
    stats.bytesOut += text.length;
  };

  const control = (client: Client, type: 'ack' | 'error' | 'heartbeat', data: unknown): void =>
    send(client, envelope(type, '', ++client.seq, Date.now(), JSON.stringify(data)));

  const error = (
    client: Client,
    code: FeedErrorCode,
    message: string,
    extra: Record<string, unknown> = {},
  ): void => {
    stats.errors[code] = (stats.errors[code] ?? 0) + 1;
    control(client, 'error', { code, message, ...extra });
  };

  const closeSlow = (client: Client): void => {
    if (client.ws.readyState !== WebSocket.OPEN) return;
    stats.slowCloses++;
    closeWith(client, FEED_CLOSE.tryAgainLater, 'client too slow');
  };

  const snapshot = (sub: Sub): void => {
    sub.ready = true;
    sub.stale = false;
    stats.snapshots++;
    const { group } = sub;
    send(sub.client, envelope('snapshot', group.channel, ++sub.seq, Date.now(), group.snapshot!));
  };

  /** Behind: too many unsent bytes, or a probe unanswered for longer than `maxLagMs`. */
  const behind = (client: Client, now: number): boolean =>
    client.ws.bufferedAmount > limits.softLimitBytes ||
    (client.probeSentAt !== 0 && now - client.probeSentAt > limits.maxLagMs);

  /**
   * Sends a tick's updates client by client, each client's in one write (a corked writev) of
   * ready-made frames: every update is encoded once per tick (see feed-fanout.ts), and a client's
   * frames go straight to its socket. That is safe beside ws's own sends because the feed never
   * compresses or sends Blobs, so ws writes every frame synchronously and never holds one back.
   *
   * Each subscribed client is probed (a ping, in the same write) every `maxLagMs`, one probe at
   * a time: the kernel buffers megabytes for a client that stopped reading before its unsent bytes
   * grow, so the probe's pong, which comes only once the client has read everything before it, is
   * what tells how far behind it is.
   */
  const deliver = (changed: readonly FeedGroup<Sub>[], clients: Iterable<Client>): void => {
    const now = performance.now();
    const ts = Date.now();
    const parts = new Map<FeedGroup<Sub>, UpdateParts>();
    for (const group of changed)
      parts.set(group, encodeUpdateParts(group.channel, ts, group.update!));
    const due: UpdateParts[] = [];
    const seqs: number[] = [];
    for (const client of clients) {
      const ws = client.ws;
      if (ws.readyState !== WebSocket.OPEN) continue;
      if (
        client.probeSentAt !== 0 &&
        now - client.probeSentAt > limits.slowCloseMs &&
        holdsBack(client)
      ) {
        closeSlow(client);
        continue;
      }
      const slow = behind(client, now);
      let count = 0;
      if (parts.size > 0)
        for (const sub of client.subs.values()) {
          const part = parts.get(sub.group);
          if (part === undefined || !sub.ready || sub.stale) continue;
          if (slow) {
            sub.stale = true;
            stale.add(sub);
            stats.conflations++;
            continue;
          }
          due[count] = part;
          seqs[count++] = ++sub.seq;
        }
      const probe =
        client.probeSentAt === 0 && client.subs.size > 0 && now - client.lastProbeAt >= probeMs;
      if (count === 0 && !probe) continue;
      const socket = client.socket;
      socket.cork();
      if (count > 0) {
        const { chunks, bytes } = frameUpdates(due, seqs, count);
        for (const chunk of chunks) socket.write(chunk);
        stats.messagesOut += count;
        stats.updates += count;
        stats.bytesOut += bytes;
      }
      if (probe) {
        // After the updates: its pong says they were read.
        ws.ping(PROBE);
        client.probeSentAt = client.lastProbeAt = now;
      }
      socket.uncork();
    }
    for (const sub of stale) {
      const client = sub.client;
      if (client.ws.readyState !== WebSocket.OPEN) stale.delete(sub);
      else if (client.ws.bufferedAmount > limits.hardLimitBytes) closeSlow(client);
      else if (!behind(client, now)) {
        stale.delete(sub);
        snapshot(sub);
      } else if (parts.has(sub.group)) {
        stats.conflations++;
      }
    }
  };

  return { control, error, snapshot, deliver, closeSlow };
}

function envelope(type: string, channel: string, seq: number, ts: number, data: string): string {
  return `{"type":"${type}","channel":${JSON.stringify(channel)},"seq":${seq},"ts":${ts},"data":${data}}`;
}
