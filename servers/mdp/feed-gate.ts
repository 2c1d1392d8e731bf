import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

/** Options of {@link createFeedGate}. */
export interface FeedGateOptions {
  /** Connections an address bucket may hold: pending ones and WebSockets. */
  maxPerAddress: number;
  /** Time a new connection has to send its request headers. */
  headerTimeoutMs: number;
  /** Counts what the gate refuses: connections past the cap, and past the header deadline. */
  stats: { rejected: { perIp: number; headerTimeout: number } };
}

/**
 * The feed's door: counts each address bucket's connections, from the TCP connection until it
 * turns out to be a page request or, once upgraded, until its WebSocket closes, so the per-address
 * cap covers handshakes that never finish; cuts a connection that has not sent its request headers
 * in time.
 */
export interface FeedGate {
  /** Watches `server`'s connections and tightens its own header and request timeouts. */
  attach(server: Server): void;
  /**
   * Admits an upgrade request on `socket`: true when it holds a place of its address (until the
   * socket closes), false when the address is full (to be refused with 429; counted) or the
   * connection was already answered 429 at connect.
   */
  admit(request: IncomingMessage, socket: Duplex): boolean;
  /** Connections that have not sent their request yet. */
  pending(): number;
  /** Address buckets holding a connection. */
  addresses(): number;
  /** Stops the header deadlines (the connections themselves are the server's to close). */
  close(): void;
}

interface Entry {
  bucket: string;
  /** The header deadline, while the request has not come. */
  deadline: NodeJS.Timeout | undefined;
}

const TIMED_OUT = 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n';
/** The answer to a connection over its address's cap, written before its request is read. */
export const TOO_MANY =
  'HTTP/1.1 429 Too Many Requests\r\nConnection: close\r\nContent-Length: 0\r\n\r\n';
/** Node's own request timeout (headers and body) as a multiple of the header timeout. */
const NODE_REQUEST_TIMEOUT_FACTOR = 2;

/** Creates the gate; see {@link FeedGate}. */
export function createFeedGate(options: FeedGateOptions): FeedGate {
  const { maxPerAddress, headerTimeoutMs, stats } = options;
  /** Connections per bucket; a bucket without any is removed, so the map is bounded by them. */
  const counts = new Map<string, number>();
  const held = new Map<Duplex, Entry>();
  /** Connections refused at connect: their request, once it comes, is dropped unanswered. */
  const refused = new WeakSet<Duplex>();
  let pending = 0;
  let closed = false;

  const hold = (socket: Duplex, bucket: string, deadline: NodeJS.Timeout | undefined): void => {
    counts.set(bucket, (counts.get(bucket) ?? 0) + 1);
    held.set(socket, { bucket, deadline });
    if (deadline !== undefined) pending++;
    socket.once('close', () => release(socket));
  };

  const settle = (entry: Entry): void => {
    if (entry.deadline === undefined) return;
    clearTimeout(entry.deadline);
    entry.deadline = undefined;
    pending--;
  };

  const release = (socket: Duplex): void => {
    const entry = held.get(socket);
    if (entry === undefined) return;
    held.delete(socket);
    settle(entry);
    const left = (counts.get(entry.bucket) ?? 1) - 1;
    if (left > 0) counts.set(entry.bucket, left);
    else counts.delete(entry.bucket);
  };

  const full = (bucket: string): boolean => (counts.get(bucket) ?? 0) >= maxPerAddress;

  const onConnection = (socket: Socket): void => {
    if (closed) return;
    const bucket = addressBucket(socket.remoteAddress);
    if (full(bucket)) {
      stats.rejected.perIp++;
      refused.add(socket);
      // Answered before its request is read: the server still reads it (an upgrade is then just
      // closed, see admit; a page request's answer goes nowhere), so the peer gets the 429 rather
      // than a reset. Whatever it never sends, the deadline cuts.
      socket.end(TOO_MANY);
      setTimeout(() => socket.destroy(), headerTimeoutMs).unref();
      return;
    }
    const deadline = setTimeout(() => {
      stats.rejected.headerTimeout++;
      release(socket);
      socket.end(TIMED_OUT);
      socket.destroy();
    }, headerTimeoutMs).unref();
    hold(socket, bucket, deadline);
  };

  /** A page request: the connection is no handshake, and leaves the count. */
  const onRequest = (request: IncomingMessage): void => {
    if (held.get(request.socket)?.deadline !== undefined) release(request.socket);
  };

  return {
    attach(server) {
      server.on('connection', onConnection);
      server.on('request', onRequest);
      // Requests after the first on a kept-alive connection: Node's own timeouts, checked every
      // 30 s, bound them.
      server.headersTimeout = headerTimeoutMs;
      server.requestTimeout = headerTimeoutMs * NODE_REQUEST_TIMEOUT_FACTOR;
    },
    admit(request, socket) {
      // Already answered 429 at connect.
      if (refused.has(socket)) return false;
      const entry = held.get(socket);
      if (entry !== undefined) {
        settle(entry);
        return true;
      }
      // A kept-alive connection (its first request was a page's), or one from before attach.
      const bucket = addressBucket(request.socket.remoteAddress);
      if (full(bucket)) {
        stats.rejected.perIp++;
        return false;
      }
      hold(socket, bucket, undefined);
      return true;
    },
    pending: () => pending,
    addresses: () => counts.size,
    close() {
      closed = true;
      for (const entry of held.values()) settle(entry);
    },
  };
}

/**
 * The bucket an address counts in: an IPv4 address itself (IPv4-mapped IPv6 too), an IPv6 one by
 * its /64 prefix, the block a single host or subscriber usually gets.
 */
export function addressBucket(address: string | undefined): string {
  if (address === undefined || address === '') return 'unknown';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped !== null) return mapped[1]!;
  if (!address.includes(':')) return address;
  // Node reports the kernel's compressed form: expand `::` to find the first four groups.
  const [head = '', tail] = address.toLowerCase().split('::', 2);
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  // A dotted IPv4 tail (`64:ff9b::1.2.3.4`) stands for two groups.
  const width = right.length + (right.at(-1)?.includes('.') === true ? 1 : 0);
  const zeros = Array<string>(Math.max(0, 8 - left.length - width)).fill('0');
  const groups = tail === undefined ? left : [...left, ...zeros, ...right];
  return `${groups
    .slice(0, 4)
    .map((group) => group.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}
