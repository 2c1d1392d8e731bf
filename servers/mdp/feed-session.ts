import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocket, type RawData } from 'ws';
import {
  FEED_BEARER_PREFIX,
  FEED_CLOSE,
  channelAllowed,
  parseChannel,
  parseClientMessage,
  verifyFeedToken,
  type FeedClaims,
  type FeedClientMessage,
  type FeedErrorCode,
  type FeedLimits,
  type TokenFailure,
} from '../../core/index.ts';
import {
  closeWith,
  isProbeAnswer,
  type Client,
  type ClientWriter,
  type Sub,
} from './feed-client.ts';
import type { FeedGroup, FeedHub } from './feed-hub.ts';
import type { FeedStats } from './feed.ts';

/** Options of {@link createConnectionHandler}. */
export interface FeedSessionOptions {
  limits: FeedLimits;
  stats: FeedStats;
  log: Logger;
  hub: FeedHub<Sub>;
  /** Clients need no token; they start authenticated. */
  insecure: boolean;
  /** HS256 secret of the tokens. */
  secret: string;
  /** Most rows a board subscription gets. */
  maxTop: number;
  /** The connected clients: a new one is added, and removed once closed. */
  clients: Set<Client>;
  /** The same by tick slice: a new client joins the one with the fewest clients. */
  slices: readonly Set<Client>[];
  /** Subscriptions whose updates were held back: one that ends is removed. */
  stale: Set<Sub>;
  writer: ClientWriter;
}

/** The slice with the fewest clients (the first of them on a tie). */
function emptiestSlice(slices: readonly Set<Client>[]): number {
  let best = 0;
  for (let n = 1; n < slices.length; n++) if (slices[n]!.size < slices[best]!.size) best = n;
  return best;
}

/** Longest a timer may wait (setTimeout's limit). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Creates what runs a client's session once its WebSocket is open: authentication (by the
 * subprotocol header or the first message, before a deadline), the message rate limit, and the
 * client's messages (auth, ping, subscribe, unsubscribe), one after another.
 */
export function createConnectionHandler(
  options: FeedSessionOptions,
): (ws: WebSocket, socket: Duplex, request: IncomingMessage, ip: string) => void {
  const { limits, stats, log, hub, insecure, secret, maxTop, clients, slices, stale } = options;
  const { control, error, snapshot } = options.writer;
  /** Authenticated connections per token subject; a subject without any is removed. */
  const perSubject = new Map<string, number>();
  const releaseSubject = (sub: string): void => {
    const left = (perSubject.get(sub) ?? 1) - 1;
    if (left > 0) perSubject.set(sub, left);
    else perSubject.delete(sub);
  };

  const authenticate = async (client: Client, token: string): Promise<boolean> => {
    const result = await verifyFeedToken(secret, token, {
      maxTtlSeconds: limits.maxTokenTtlSeconds,
    });
    // Closed while the token was checked: it must not take a subject's place.
    if (client.ws.readyState !== WebSocket.OPEN) return false;
    if ('failure' in result) {
      stats.authFailures++;
      closeWith(client, FEED_CLOSE.unauthorized, TOKEN_CLOSE_REASONS[result.failure]);
      return false;
    }
    const previous = typeof client.claims === 'object' ? client.claims.sub : undefined;
    if (result.sub !== previous) {
      if ((perSubject.get(result.sub) ?? 0) >= limits.maxConnectionsPerSubject) {
        stats.rejected.perSubject++;
        closeWith(client, FEED_CLOSE.tooManyConnections, 'too many connections for this token');
        return false;
      }
      perSubject.set(result.sub, (perSubject.get(result.sub) ?? 0) + 1);
      if (previous !== undefined) releaseSubject(previous);
    }
    // A new token (a refresh) replaces the old one: its subject, expiry and allow-list.
    client.claims = result;
    if (client.handshake !== undefined) clearTimeout(client.handshake);
    armExpiry(client, result.exp * 1000);
    const dropped = [...client.subs.keys()].filter((channel) => !channelAllowed(result, channel));
    for (const channel of dropped) leave(client, channel);
    if (dropped.length > 0)
      error(client, 'forbidden_channel', `the new token does not allow ${count(dropped.length)}`, {
        refused: { forbidden_channel: dropped },
      });
    return true;
  };

  /** Closes the connection when its token expires (in steps: timers wait at most ~24.8 days). */
  const armExpiry = (client: Client, expMs: number): void => {
    if (client.expiry !== undefined) clearTimeout(client.expiry);
    const wait = expMs - Date.now();
    client.expiry = setTimeout(
      () =>
        wait > MAX_TIMER_MS
          ? armExpiry(client, expMs)
          : closeWith(client, FEED_CLOSE.unauthorized, 'token expired'),
      Math.min(MAX_TIMER_MS, Math.max(0, wait)),
    ).unref();
  };

  const subscribe = async (
    client: Client,
    message: Extract<FeedClientMessage, { op: 'subscribe' }>,
  ): Promise<void> => {
    const top = Math.min(message.top ?? maxTop, maxTop);
    const echo = message.id === undefined ? {} : { id: message.id };
    const accepted: { channel: string; spec: NonNullable<ReturnType<typeof parseChannel>> }[] = [];
    const channels = new Set(message.channels);
    const refused = new Refusals();
    for (const channel of channels) {
      const spec = parseChannel(channel);
      if (spec === undefined) refused.add('unknown_channel', channel);
      else if (client.claims !== 'insecure' && !channelAllowed(client.claims!, channel))
        refused.add('forbidden_channel', channel);
      else if (!client.subs.has(channel) && client.subs.size >= limits.maxSubscriptions)
        refused.add('too_many_subscriptions', channel);
      else {
        // Resubscribing (e.g. with another top, or after a gap) replaces the subscription.
        leave(client, channel);
        accepted.push({ channel, spec });
        client.subs.set(channel, placeholder(client));
      }
    }
    // One error for every refused channel of the message: a reply per channel would let a
    // client make the feed send many times the bytes it sent.
    if (refused.first !== undefined)
      error(client, refused.first, refused.describe(channels.size, limits.maxSubscriptions), {
        refused: refused.byCode,
        ...echo,
      });
    if (accepted.length === 0) return;
    control(client, 'ack', {
      op: 'subscribe',
      channels: accepted.map((a) => a.channel),
      top,
      ...echo,
    });
    const unavailable: string[] = [];
    for (const { channel, spec } of accepted) {
      const sub = client.subs.get(channel);
      // Unsubscribed, or the connection closed, while an earlier snapshot was read.
      if (sub === undefined) continue;
      try {
        sub.group = await hub.join(spec, channel, top, sub, client.slice);
      } catch (err) {
        log.warn({ err, channel }, 'feed snapshot read failed');
        if (client.subs.get(channel) === sub) client.subs.delete(channel);
        unavailable.push(channel);
        continue;
      }
      // Unsubscribed or gone while the snapshot was read.
      if (client.subs.get(channel) !== sub || client.ws.readyState !== WebSocket.OPEN) {
        hub.leave(sub.group, sub);
        continue;
      }
      snapshot(sub);
    }
    if (unavailable.length > 0)
      error(
        client,
        'unavailable',
        `no snapshot of ${count(unavailable.length)} now: subscribe again`,
        {
          refused: { unavailable },
          ...echo,
        },
      );
  };

  const leave = (client: Client, channel: string): boolean => {
    const sub = client.subs.get(channel);
    if (sub === undefined) return false;
    client.subs.delete(channel);
    stale.delete(sub);
    if (sub.group !== PENDING) hub.leave(sub.group, sub);
    return true;
  };

  const allow = (client: Client): boolean => {
    const now = performance.now();
    client.tokens = Math.min(
      limits.messagesBurst,
      client.tokens + ((now - client.refilledAt) / 1000) * limits.messagesPerSecond,
    );
    client.refilledAt = now;
    if (client.tokens >= 1) {
      client.tokens -= 1;
      return true;
    }
    const second = Math.floor(now / 1000);
    if (second !== client.limitedSecond) {
      client.limitedSecond = second;
      client.limitedInSecond = 0;
    }
    if (++client.limitedInSecond > limits.abuseMessagesPerSecond) {
      stats.abuseCloses++;
      closeWith(client, FEED_CLOSE.policy, 'message rate abuse');
    } else if (client.limitedInSecond === 1) {
      // One error per second: telling a flooding client more would amplify the flood.
      error(client, 'rate_limited', `at most ${limits.messagesPerSecond} messages per second`);
    }
    return false;
  };

  const onMessage = async (client: Client, data: RawData, isBinary: boolean): Promise<void> => {
    // Whatever arrives after the feed decided to close is ignored.
    if (client.ws.readyState !== WebSocket.OPEN) return;
    stats.messagesIn++;
    if (!allow(client)) return;
    if (isBinary) {
      error(client, 'bad_message', 'messages are JSON text');
      return;
    }
    const parsed = parseClientMessage(rawText(data));
    if (!('message' in parsed)) {
      error(client, parsed.code, parsed.detail, parsed.id === undefined ? {} : { id: parsed.id });
      return;
    }
    const message = parsed.message;
    const echo = message.id === undefined ? {} : { id: message.id };
    if (message.op === 'auth') {
      if (insecure) control(client, 'ack', { op: 'auth', sub: null, ...echo });
      else if (await authenticate(client, message.token)) {
        const claims = client.claims as FeedClaims;
        control(client, 'ack', { op: 'auth', sub: claims.sub, exp: claims.exp, ...echo });
      }
      return;
    }
    if (client.claims === undefined) {
      error(client, 'not_authenticated', 'send {"op":"auth","token":…} first', echo);
      return;
    }
    if (message.op === 'ping') control(client, 'ack', { op: 'ping', ...echo });
    else if (message.op === 'subscribe') await subscribe(client, message);
    else {
      const removed = message.channels.filter((channel) => leave(client, channel));
      control(client, 'ack', { op: 'unsubscribe', channels: removed, ...echo });
    }
  };

  const onConnection = (
    ws: WebSocket,
    socket: Duplex,
    request: IncomingMessage,
    ip: string,
  ): void => {
    const client: Client = {
      ws,
      socket,
      ip,
      slice: emptiestSlice(slices),
      claims: insecure ? 'insecure' : undefined,
      subs: new Map(),
      seq: 0,
      tokens: limits.messagesBurst,
      refilledAt: performance.now(),
      limitedSecond: 0,
      limitedInSecond: 0,
      alive: true,
      probeSentAt: 0,
      lastProbeAt: 0,
      handshake: undefined,
      expiry: undefined,
      cut: undefined,
    };
    clients.add(client);
    slices[client.slice]!.add(client);
    stats.clients = clients.size;
    stats.connections++;
    // Messages are handled one after another: a subscribe's snapshot reads finish before the next.
    let queue = Promise.resolve();
    ws.on('message', (data, isBinary) => {
      queue = queue
        .then(() => onMessage(client, data, isBinary))
        .catch((err: unknown) => log.warn({ err }, 'feed message failed'));
    });
    ws.on('pong', (data) => {
      client.alive = true;
      if (isProbeAnswer(data)) client.probeSentAt = 0;
    });
    ws.on('error', (err) => log.debug({ err: err.message, ip }, 'feed client error'));
    ws.on('close', () => {
      for (const channel of [...client.subs.keys()]) leave(client, channel);
      for (const timer of [client.handshake, client.expiry, client.cut]) clearTimeout(timer);
      clients.delete(client);
      slices[client.slice]!.delete(client);
      stats.clients = clients.size;
      if (typeof client.claims === 'object') releaseSubject(client.claims.sub);
    });
    if (insecure) return;
    const token = bearerOf(request);
    if (token !== undefined) {
      queue = queue
        .then(async () => {
          if (await authenticate(client, token)) {
            const claims = client.claims as FeedClaims;
            control(client, 'ack', { op: 'auth', sub: claims.sub, exp: claims.exp });
          }
        })
        .catch((err: unknown) => log.warn({ err }, 'feed authentication failed'));
      return;
    }
    client.handshake = setTimeout(() => {
      if (client.claims !== undefined) return;
      stats.handshakeTimeouts++;
      closeWith(client, FEED_CLOSE.unauthorized, 'authentication timeout');
    }, limits.handshakeTimeoutMs).unref();
  };

  return onConnection;
}

/** The reason of a 4401 close, by why the token was refused. */
const TOKEN_CLOSE_REASONS: Record<TokenFailure, string> = {
  expired: 'token expired',
  invalid: 'invalid token',
  lifetime: 'token lifetime over the limit',
  future: 'token issued in the future',
};

/** "1 channel", "3 channels". */
const count = (n: number): string => `${n} channel${n === 1 ? '' : 's'}`;

/** The channels a subscribe message refused, by code, for its one error reply. */
class Refusals {
  /** The code of the first refused channel: the error's `code`. */
  first: FeedErrorCode | undefined;
  readonly byCode: Partial<Record<FeedErrorCode, string[]>> = {};
  #total = 0;

  add(code: FeedErrorCode, channel: string): void {
    this.first ??= code;
    (this.byCode[code] ??= []).push(channel);
    this.#total++;
  }

  /** The error's message: how many were refused, and why. */
  describe(of: number, maxSubscriptions: number): string {
    const why: Partial<Record<FeedErrorCode, string>> = {
      unknown_channel: 'no such channel',
      forbidden_channel: 'not allowed by the token',
      too_many_subscriptions: `at most ${maxSubscriptions} channels per connection`,
    };
    const reasons = Object.keys(this.byCode).map((code) => why[code as FeedErrorCode] ?? code);
    return `${this.#total} of ${count(of)} refused: ${reasons.join('; ')}`;
  }
}

/** Marks a subscription whose group is still being joined. */
const PENDING = {} as FeedGroup<Sub>;

function placeholder(client: Client): Sub {
  return { client, group: PENDING, seq: 0, ready: false, stale: false };
}

function rawText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

/** The token of a `Sec-WebSocket-Protocol: openbell.v1, bearer.<token>` header. */
function bearerOf(request: IncomingMessage): string | undefined {
  const header = request.headers['sec-websocket-protocol'];
  if (header === undefined) return undefined;
  for (const part of header.split(',')) {
    const value = part.trim();
    if (value.startsWith(FEED_BEARER_PREFIX)) return value.slice(FEED_BEARER_PREFIX.length);
  }
  return undefined;
}
