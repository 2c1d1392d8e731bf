import express from 'express';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import {
  DEFAULTS,
  createBoardPublisher,
  createBoardStore,
  mintFeedToken,
  type BoardRow,
  type FeedEnvelope,
  type FeedLimits,
  type MarketEvent,
} from '../../core/index.ts';
import { useIsolation, type Isolation } from '../../testing/harness.ts';
import { createFeed, type Feed } from './feed.ts';

const log = pino({ level: 'silent' });
const SECRET = 'feed-test-secret-0123456789abcdef-xyz';
const DATE = '2026-11-24';
const OPEN = Date.parse('2026-11-24T14:30:00Z');

interface BoardData {
  date: string;
  version: number;
  top: number;
  rows: BoardRow[];
  order?: string[];
}

/** A test client that keeps every envelope it receives. */
class Trader {
  readonly messages: FeedEnvelope[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly opened: Promise<void>;

  readonly ws: WebSocket;

  constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data: Buffer) =>
      this.messages.push(JSON.parse(data.toString()) as FeedEnvelope),
    );
    this.closed = new Promise((resolve) =>
      ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
    );
    this.opened = new Promise((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
  }

  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  of(channel: string, type?: string): FeedEnvelope[] {
    return this.messages.filter(
      (m) => m.channel === channel && (type === undefined || m.type === type),
    );
  }

  async next(predicate: (m: FeedEnvelope) => boolean, timeout = 5000): Promise<FeedEnvelope> {
    let found: FeedEnvelope | undefined;
    await vi.waitFor(
      () => {
        found = this.messages.find(predicate);
        expect(found).toBeDefined();
      },
      { timeout, interval: 5 },
    );
    return found!;
  }
}

/** A board as a client shows it: the last snapshot, with every later update merged in. */
function view(t: Trader, channel: string): BoardRow[] {
  let rows = new Map<string, BoardRow>();
  let order: string[] = [];
  for (const m of t.of(channel)) {
    const data = m.data as BoardData;
    if (m.type === 'snapshot') {
      rows = new Map(data.rows.map((r) => [r.sym, r]));
      order = data.rows.map((r) => r.sym);
    } else if (m.type === 'update') {
      for (const r of data.rows) rows.set(r.sym, r);
      order = data.order ?? order;
    }
  }
  return order.map((sym) => rows.get(sym)!);
}

describe('trader feed', () => {
  const iso = useIsolation();
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function serve(
    options: { insecure?: boolean; limits?: Partial<FeedLimits>; top?: number } = {},
  ): Promise<{ url: string; feed: Feed; port: number }> {
    const { redisUrl, names } = iso();
    const feed = createFeed({
      redisUrl,
      names,
      log,
      secret: SECRET,
      limits: { cadenceMs: 20, ...options.limits },
      ...(options.insecure === undefined ? {} : { insecure: options.insecure }),
      ...(options.top === undefined ? {} : { top: options.top }),
    });
    const server: Server = express().listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    feed.attach(server);
    await feed.start();
    cleanups.push(async () => {
      await feed.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });
    const port = (server.address() as AddressInfo).port;
    return { url: `ws://127.0.0.1:${port}/ws`, feed, port };
  }

  function trader(url: string, token?: string, headers: Record<string, string> = {}): Trader {
    const protocols = token === undefined ? ['openbell.v1'] : ['openbell.v1', `bearer.${token}`];
    const ws = new WebSocket(url, protocols, { headers });
    const t = new Trader(ws);
    cleanups.push(async () => {
      ws.terminate();
      await t.closed;
    });
    return t;
  }

  const token = (ttlSeconds = 600, channels?: string[]) =>
    mintFeedToken(SECRET, {
      sub: 'trader',
      ttlSeconds,
      ...(channels === undefined ? {} : { channels }),
    });

  /** Bars into Redis through the real board store, published by the real publisher. */
  function market(box: Isolation, top: number = DEFAULTS.board.top) {
    const { redis, names } = box;
    const store = createBoardStore({ redis, names, board: DEFAULTS.board });
    const publisher = createBoardPublisher({
      redis,
      store,
      names,
      log,
      date: () => DATE,
      intervalMs: 5,
      top,
    });
    let batch = 0;
    let av = 1000;
    return {
      store,
      async bars(prices: Record<string, number>, open = 100): Promise<void> {
        av += 10;
        const events: MarketEvent[] = Object.entries(prices).map(([sym, c]) => ({
          ev: 'A',
          sym,
          s: OPEN,
          e: OPEN + 1000,
          av: av + sym.length,
          c,
          op: open,
        }));
        await store.applyBatch({ v: 1, id: `b${++batch}`, receivedAtMs: Date.now(), events });
        await new Promise((r) => setTimeout(r, 6));
        await publisher.tick();
      },
    };
  }

  it('authenticates by the subprotocol header, then acks, snapshots and sends only what changed', async () => {
    const box = iso();
    const m = market(box);
    await m.bars({ AAPL: 101, MSFT: 103, NVDA: 110 });
    const { url } = await serve();
    const t = trader(url, await token());
    await t.opened;
    expect(t.ws.protocol).toBe('openbell.v1');
    await t.next((e) => e.type === 'ack' && (e.data as { op: string }).op === 'auth');
    t.send({ op: 'subscribe', channels: ['board:gainers', 'symbol:NVDA'], top: 2, id: 7 });
    const ack = await t.next(
      (e) => e.type === 'ack' && (e.data as { op: string }).op === 'subscribe',
    );
    expect(ack.data).toEqual({
      op: 'subscribe',
      channels: ['board:gainers', 'symbol:NVDA'],
      top: 2,
      id: 7,
    });
    const snap = await t.next((e) => e.channel === 'board:gainers' && e.type === 'snapshot');
    expect(snap.seq).toBe(1);
    const data = snap.data as BoardData;
    expect(data.rows.map((r) => r.sym)).toEqual(['NVDA', 'MSFT']);
    expect(data.rows[0]).toMatchObject({ sym: 'NVDA', score: 10, price: 110 });
    expect(t.messages.indexOf(ack)).toBeLessThan(t.messages.indexOf(snap));
    const sym = await t.next((e) => e.channel === 'symbol:NVDA' && e.type === 'snapshot');
    // Bar times are 64-bit integers in Redis: they must come back as numbers.
    expect(sym.data).toMatchObject({
      barEndMs: OPEN + 1000,
      sym: 'NVDA',
      date: DATE,
      price: 110,
      open: 100,
      changePct: 10,
    });

    // AAPL jumps to the top: the update carries AAPL's row and the new order, not MSFT's.
    await m.bars({ AAPL: 120 });
    const update = await t.next((e) => e.channel === 'board:gainers' && e.type === 'update');
    expect(update.seq).toBe(2);
    expect(update.data).toMatchObject({ top: 2, order: ['AAPL', 'NVDA'] });
    expect((update.data as BoardData).rows.map((r) => r.sym)).toEqual(['AAPL']);
    expect(update.ts).toBeGreaterThanOrEqual(snap.ts);
    // Only NVDA's own changes reach symbol:NVDA.
    await m.bars({ NVDA: 111 });
    const nvda = await t.next((e) => e.channel === 'symbol:NVDA' && e.type === 'update');
    expect(nvda).toMatchObject({ seq: 2, data: { price: 111 } });
    const seqs = t.of('board:gainers').map((e) => e.seq);
    expect(seqs).toEqual(seqs.map((_, n) => n + 1));
  });

  it('authenticates by the first message, and unsubscribes', async () => {
    const { url } = await serve();
    const t = trader(url);
    await t.opened;
    t.send({ op: 'subscribe', channels: ['board:volume'] });
    const refused = await t.next((e) => e.type === 'error');
    expect(refused.data).toMatchObject({ code: 'not_authenticated' });
    t.send({ op: 'auth', token: await token(), id: 'a' });
    await t.next((e) => e.type === 'ack' && (e.data as { id?: string }).id === 'a');
    t.send({ op: 'subscribe', channels: ['board:volume'] });
    await t.next((e) => e.channel === 'board:volume' && e.type === 'snapshot');
    t.send({ op: 'unsubscribe', channels: ['board:volume', 'board:trades'] });
    const ack = await t.next(
      (e) => e.type === 'ack' && (e.data as { op: string }).op === 'unsubscribe',
    );
    expect(ack.data).toEqual({ op: 'unsubscribe', channels: ['board:volume'] });
    t.send({ op: 'ping', id: 1 });
    await t.next((e) => e.type === 'ack' && (e.data as { op: string }).op === 'ping');
  });

  it('closes 4401 on a bad token, an expired token, and no token in time', async () => {
    const { url, feed } = await serve({ limits: { handshakeTimeoutMs: 200 } });
    const forged = await mintFeedToken('another-secret-0123456789abcdef-xyz!', {
      sub: 'x',
      ttlSeconds: 60,
    });
    const bad = trader(url, forged);
    expect(await bad.closed).toEqual({ code: 4401, reason: 'invalid token' });
    const expired = trader(url, await token(1));
    await expired.opened;
    await expired.next((e) => e.type === 'ack');
    // Its expiry closes it while connected.
    expect(await expired.closed).toEqual({ code: 4401, reason: 'token expired' });
    const stale = await token(1);
    await new Promise((r) => setTimeout(r, 2100));
    const late = trader(url, stale);
    expect(await late.closed).toEqual({ code: 4401, reason: 'token expired' });
    const silent = trader(url);
    expect(await silent.closed).toEqual({ code: 4401, reason: 'authentication timeout' });
    expect(feed.stats().authFailures).toBe(2);
    expect(feed.stats().handshakeTimeouts).toBe(1);
  });

  it('keeps a token to its channel allow-list', async () => {
    const { url } = await serve();
    const t = trader(url, await token(600, ['board:*', 'symbol:AAPL']));
    await t.opened;
    t.send({
      op: 'subscribe',
      channels: ['board:gappers', 'symbol:AAPL', 'symbol:TSLA', 'board:losers'],
    });
    const ack = await t.next(
      (e) => e.type === 'ack' && (e.data as { op: string }).op === 'subscribe',
    );
    expect((ack.data as { channels: string[] }).channels).toEqual(['board:gappers', 'symbol:AAPL']);
    const errors = t.messages.filter((e) => e.type === 'error').map((e) => e.data);
    expect(errors).toEqual([
      expect.objectContaining({ code: 'forbidden_channel', channel: 'symbol:TSLA' }),
      expect.objectContaining({ code: 'unknown_channel', channel: 'board:losers' }),
    ]);
    expect(t.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('answers bad messages with errors and enforces its limits', async () => {
    const { url, port, feed } = await serve({
      limits: {
        maxSubscriptions: 2,
        messagesPerSecond: 5,
        messagesBurst: 5,
        abuseMessagesPerSecond: 20,
        maxConnectionsPerIp: 3,
      },
    });
    const t = trader(url, await token());
    await t.opened;
    t.send('not json');
    t.send({ op: 'dance' });
    t.send({ op: 'subscribe', channels: 'board:volume' });
    t.send({ op: 'subscribe', channels: ['board:volume', 'board:trades', 'board:gainers'] });
    await vi.waitFor(() => expect(t.messages.filter((e) => e.type === 'error')).toHaveLength(4));
    expect(
      t.messages.filter((e) => e.type === 'error').map((e) => (e.data as { code: string }).code),
    ).toEqual(['bad_message', 'unknown_op', 'bad_message', 'too_many_subscriptions']);
    // A burst past the rate: one rate_limited error, the connection stays.
    for (let n = 0; n < 8; n++) t.send({ op: 'ping' });
    await t.next((e) => e.type === 'error' && (e.data as { code: string }).code === 'rate_limited');
    expect(t.ws.readyState).toBe(WebSocket.OPEN);
    // A flood is abuse: 1008.
    for (let n = 0; n < 40; n++) t.send({ op: 'ping' });
    expect((await t.closed).code).toBe(1008);
    expect(feed.stats().abuseCloses).toBe(1);

    // Too big a message: 1009.
    const big = trader(url, await token());
    await big.opened;
    big.send({ op: 'ping', pad: 'x'.repeat(5000) });
    expect((await big.closed).code).toBe(1009);

    // Connections per address: the fourth is refused before the upgrade.
    const open = [trader(url), trader(url), trader(url)];
    await Promise.all(open.map((o) => o.opened));
    await expect(trader(url).opened).rejects.toThrow('HTTP 429');
    // Browsers from another site are refused; the page's own origin is not.
    await expect(trader(url, undefined, { Origin: 'https://evil.example' }).opened).rejects.toThrow(
      'HTTP 403',
    );
    for (const o of open) o.ws.close();
    await Promise.all(open.map((o) => o.closed));
    await trader(url, undefined, { Origin: `http://127.0.0.1:${port}` }).opened;
    expect(feed.stats().rejected).toMatchObject({ perIp: 1, origin: 1 });
  });

  it('conflates a stalled client to fresh snapshots while a fast one keeps its cadence', async () => {
    const box = iso();
    const m = market(box, 400);
    const syms = Array.from({ length: 400 }, (_, n) => `S${n}`);
    const prices = (k: number) =>
      Object.fromEntries(syms.map((s, n) => [s, 100 + ((n * 7 + k) % 50)]));
    await m.bars(prices(0));
    const { url, feed } = await serve({
      top: 400,
      limits: { softLimitBytes: 64 * 1024, hardLimitBytes: 64 * 1024 * 1024 },
    });
    const channels = ['board:gainers', 'board:gappers', 'board:volume'];
    const fast = trader(url, await token());
    const slow = trader(url, await token());
    await Promise.all([fast.opened, slow.opened]);
    for (const t of [fast, slow]) t.send({ op: 'subscribe', channels, top: 400 });
    await slow.next((e) => e.channel === 'board:volume' && e.type === 'snapshot');
    await fast.next((e) => e.channel === 'board:volume' && e.type === 'snapshot');
    // The slow trader stops reading: its socket fills, then the feed holds back its updates.
    (slow.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
    let k = 0;
    await vi.waitFor(
      async () => {
        await m.bars(prices(++k));
        expect(feed.stats().conflations).toBeGreaterThan(0);
      },
      { timeout: 20_000, interval: 1 },
    );
    const fastBefore = fast.of('board:gainers', 'update').length;
    for (let n = 0; n < 10; n++) {
      await m.bars(prices(++k));
      await new Promise((r) => setTimeout(r, 25));
    }
    // The fast trader got (nearly) every round meanwhile, never a conflated snapshot.
    await vi.waitFor(() =>
      expect(fast.of('board:gainers', 'update').length - fastBefore).toBeGreaterThanOrEqual(8),
    );
    expect(fast.of('board:gainers', 'snapshot')).toHaveLength(1);
    // Once it reads again it catches up with one fresh snapshot per channel, and no seq gap.
    (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    await m.bars(prices(++k));
    await vi.waitFor(
      async () => {
        await m.bars(prices(++k));
        expect(slow.of('board:gainers', 'snapshot').length).toBeGreaterThanOrEqual(2);
      },
      { timeout: 20_000, interval: 50 },
    );
    for (const t of [fast, slow])
      for (const channel of channels) {
        const seqs = t.of(channel).map((e) => e.seq);
        expect(seqs).toEqual(seqs.map((_, n) => n + 1));
      }
    // What the slow trader shows once caught up is the board in Redis, not an older one.
    const fresh = await m.store.readBoards(DATE, 400);
    await vi.waitFor(() => expect(view(slow, 'board:gainers')).toEqual(fresh.boards.gainers), {
      timeout: 10_000,
    });
    expect(fast.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('closes a client past the hard limit with 1013, and the others carry on', async () => {
    const box = iso();
    const m = market(box, 400);
    const syms = Array.from({ length: 400 }, (_, n) => `S${n}`);
    await m.bars(Object.fromEntries(syms.map((s, n) => [s, 100 + n])));
    const { url, feed } = await serve({
      top: 400,
      limits: {
        softLimitBytes: 16 * 1024,
        hardLimitBytes: 32 * 1024,
        messagesPerSecond: 1000,
        messagesBurst: 1000,
      },
    });
    const stuck = trader(url, await token());
    const other = trader(url, await token());
    await Promise.all([stuck.opened, other.opened]);
    (stuck.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    // Every subscribe is answered with a snapshot (about 30 KB here): they pile up unsent.
    for (let n = 0; n < 400; n++) {
      stuck.send({ op: 'subscribe', channels: ['board:volume'], top: 400 });
      if (n % 20 === 0) await new Promise((r) => setTimeout(r, 5));
      if (feed.stats().slowCloses > 0) break;
    }
    await vi.waitFor(() => expect(feed.stats().slowCloses).toBe(1), { timeout: 10_000 });
    (stuck.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    expect((await stuck.closed).code).toBe(1013);
    other.send({ op: 'subscribe', channels: ['board:volume'] });
    await other.next((e) => e.channel === 'board:volume' && e.type === 'snapshot');
  });

  it('serves the same boards from two instances (stateless, behind a load balancer)', async () => {
    const box = iso();
    const m = market(box);
    await m.bars({ AAPL: 101, MSFT: 102 });
    const a = await serve();
    const b = await serve();
    const ta = trader(a.url, await token());
    const tb = trader(b.url, await token());
    for (const t of [ta, tb]) {
      await t.opened;
      t.send({ op: 'subscribe', channels: ['board:gainers'] });
      await t.next((e) => e.type === 'snapshot');
    }
    await m.bars({ AAPL: 105, TSLA: 130 });
    const [ua, ub] = await Promise.all(
      [ta, tb].map((t) =>
        t.next((e) => e.type === 'update' && (e.data as BoardData).order?.[0] === 'TSLA'),
      ),
    );
    expect(ua!.data).toEqual(ub!.data);
    expect((ua!.data as BoardData).order).toEqual(['TSLA', 'AAPL', 'MSFT']);
  });

  it('drops a malformed board update from pub/sub, counts it, and carries on', async () => {
    const box = iso();
    const m = market(box);
    await m.bars({ AAPL: 101 });
    const { url, feed } = await serve();
    const t = trader(url, await token());
    await t.opened;
    t.send({ op: 'subscribe', channels: ['board:gainers'] });
    await t.next((e) => e.type === 'snapshot');
    for (const junk of [
      'null',
      '{"date":1}',
      'not json',
      JSON.stringify({ date: DATE, board: 'gainers', version: 9e9, publishedAtMs: 1, rows: 'x' }),
    ])
      await box.redis.publish(box.names.boardUpdates(DATE), junk);
    await m.bars({ MSFT: 130 });
    const update = await t.next((e) => e.type === 'update');
    expect((update.data as BoardData).order).toEqual(['MSFT', 'AAPL']);
    expect(feed.stats().hub?.badMessages).toBe(4);
  });

  it('takes a fresh token on the same connection, with its allow-list', async () => {
    const { url } = await serve();
    const t = trader(url, await token(600));
    await t.opened;
    t.send({ op: 'subscribe', channels: ['board:volume', 'symbol:AAPL'] });
    await t.next((e) => e.channel === 'symbol:AAPL' && e.type === 'snapshot');
    t.send({ op: 'auth', token: await token(600, ['board:*']), id: 'refresh' });
    await t.next((e) => e.type === 'ack' && (e.data as { id?: string }).id === 'refresh');
    const dropped = await t.next((e) => e.type === 'error');
    expect(dropped.data).toMatchObject({ code: 'forbidden_channel', channel: 'symbol:AAPL' });
    t.send({ op: 'unsubscribe', channels: ['board:volume', 'symbol:AAPL'] });
    const ack = await t.next(
      (e) => e.type === 'ack' && (e.data as { op: string }).op === 'unsubscribe',
    );
    expect(ack.data).toMatchObject({ channels: ['board:volume'] });
  });

  it('closes promptly even with a client that stopped reading', async () => {
    const box = iso();
    const m = market(box, 400);
    await m.bars(Object.fromEntries(Array.from({ length: 400 }, (_, n) => [`S${n}`, 100 + n])));
    const { url, feed } = await serve({
      top: 400,
      limits: { messagesPerSecond: 1000, messagesBurst: 1000 },
    });
    const stuck = trader(url, await token());
    await stuck.opened;
    (stuck.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    for (let n = 0; n < 100; n++)
      stuck.send({ op: 'subscribe', channels: ['board:volume'], top: 400 });
    await new Promise((r) => setTimeout(r, 300));
    const begun = Date.now();
    await feed.close();
    expect(Date.now() - begun).toBeLessThan(5000);
  });

  it('finds a dead peer by its missing pongs and drops it', async () => {
    const { url, feed } = await serve({ limits: { heartbeatMs: 150 } });
    const alive = trader(url, await token());
    const dead = new Trader(
      new WebSocket(url, ['openbell.v1', `bearer.${await token()}`], { autoPong: false }),
    );
    cleanups.push(async () => {
      dead.ws.terminate();
      await dead.closed;
    });
    await Promise.all([alive.opened, dead.opened]);
    expect((await dead.closed).code).toBe(1006);
    expect(feed.stats().deadPeers).toBe(1);
    expect(alive.ws.readyState).toBe(WebSocket.OPEN);
    await alive.next((e) => e.type === 'heartbeat');
  });

  it('refuses to start without a secret unless insecure', () => {
    const { redisUrl, names } = iso();
    expect(() => createFeed({ redisUrl, names, log })).toThrow(/feed\.secret: required/);
    expect(() => createFeed({ redisUrl, names, log, secret: 'short' })).toThrow(/at least 32/);
    expect(() => createFeed({ redisUrl, names, log, insecure: true })).not.toThrow();
  });

  it('lets anyone in when insecure (the lab)', async () => {
    const { url } = await serve({ insecure: true });
    const t = trader(url);
    await t.opened;
    t.send({ op: 'subscribe', channels: ['board:trades'] });
    await t.next((e) => e.channel === 'board:trades' && e.type === 'snapshot');
  });
});
