import { describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { createBoardPublisher, mintFeedToken } from '../../core/index.ts';
import { DATE, OPEN, log, useFeedTest, type BoardData, type Trader } from '../../testing/feed.ts';
import { createFeed } from './feed.ts';

describe('trader feed', () => {
  const { iso, serve, trader, token, market } = useFeedTest();

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

  it('spreads a fan-out over the cadence: each slice’s clients get the update at their own tick', async () => {
    const box = iso();
    const m = market(box);
    await m.bars({ AAPL: 101, MSFT: 103 });
    // Ticks 50 ms apart; the four clients join the four emptiest slices, one each.
    const cadenceMs = 200;
    const { url, feed } = await serve({ limits: { cadenceMs, slices: 4 } });
    const connect = async (): Promise<Trader> => {
      const t = trader(url, await token());
      await t.opened;
      t.send({ op: 'subscribe', channels: ['board:gainers'] });
      await t.next((e) => e.channel === 'board:gainers' && e.type === 'snapshot');
      return t;
    };
    const traders = [await connect(), await connect(), await connect(), await connect()];
    expect(feed.stats().slices).toEqual([1, 1, 1, 1]);
    await m.bars({ AAPL: 120 });
    const updates = await Promise.all(
      traders.map((t) => t.next((e) => e.channel === 'board:gainers' && e.type === 'update')),
    );
    // One tick for everyone would stamp one `ts` on all four.
    const ts = updates.map((u) => u.ts).sort((a, b) => a - b);
    expect(new Set(ts).size).toBeGreaterThan(1);
    expect(ts.at(-1)! - ts[0]!).toBeGreaterThanOrEqual(40);
    expect(updates.map((u) => u.data)).toEqual(updates.map(() => updates[0]!.data));

    // Fifty changes back to back: each client still gets at most one update per cadence, and
    // every slice ticks about once per cadence (4 ticks per 200 ms; a tick is never early).
    const ticksBefore = feed.stats().ticks;
    const startedAt = performance.now();
    for (let n = 0; n < 50; n++) await m.bars({ AAPL: 121 + n });
    await new Promise((r) => setTimeout(r, cadenceMs * 2));
    const cadences = (performance.now() - startedAt) / cadenceMs;
    const ticks = feed.stats().ticks - ticksBefore;
    expect(ticks).toBeLessThanOrEqual(4 * (Math.floor(cadences) + 1));
    expect(ticks).toBeGreaterThanOrEqual(4 * Math.floor(cadences * 0.75));
    for (const t of traders) {
      const times = t.of('board:gainers', 'update').map((u) => u.ts);
      expect(times.length).toBeGreaterThanOrEqual(3);
      // `ts` is whole ms: a cadence of 200 ms can read as 199.
      for (let n = 1; n < times.length; n++)
        expect(times[n]! - times[n - 1]!).toBeGreaterThanOrEqual(cadenceMs - 1);
    }

    // A client that leaves frees its slice; the next one fills it.
    traders[2]!.ws.close();
    await traders[2]!.closed;
    await vi.waitFor(() => expect(feed.stats().slices).toEqual([1, 1, 0, 1]));
    await connect();
    expect(feed.stats().slices).toEqual([1, 1, 1, 1]);
  });

  it('switches to a new trading date with its boards, never an empty board in between', async () => {
    const box = iso();
    const m = market(box);
    await m.bars({ AAPL: 101, MSFT: 103 });
    const { url } = await serve();
    // The date is read at slice 0's tick: the trader watched is in slice 1, to tick in between.
    const first = trader(url, await token());
    await first.opened;
    const t = trader(url, await token());
    await t.opened;
    t.send({ op: 'subscribe', channels: ['board:gainers'] });
    const snap = await t.next((e) => e.channel === 'board:gainers' && e.type === 'snapshot');
    expect((snap.data as BoardData).date).toBe(DATE);

    // The next trading day's first bar, applied and published as the analyzers do.
    const nextDate = '2026-11-25';
    const nextOpen = OPEN + 86_400_000;
    const publisher = createBoardPublisher({
      redis: box.redis,
      store: m.store,
      names: box.names,
      log,
      date: () => nextDate,
      intervalMs: 5,
      top: 20,
    });
    const bar = { ev: 'A' as const, sym: 'NVDA', s: nextOpen, e: nextOpen + 1000, av: 5000 };
    await m.store.applyBatch({
      v: 1,
      id: 'next-day-1',
      receivedAtMs: Date.now(),
      events: [{ ...bar, c: 110, op: 100 }],
    });
    // The date has moved, its boards are not published yet: the feed stays on the old date.
    await new Promise((r) => setTimeout(r, 100));
    expect(t.messages.filter((e) => (e.data as BoardData | null)?.date === nextDate)).toEqual([]);
    await publisher.tick();
    const update = await t.next(
      (e) => e.type === 'update' && (e.data as BoardData).date === nextDate,
    );
    expect((update.data as BoardData).rows.map((r) => r.sym)).toEqual(['NVDA']);
    const emptyNewDay = t
      .of('board:gainers')
      .filter(
        (e) => (e.data as BoardData).date === nextDate && (e.data as BoardData).rows.length === 0,
      );
    expect(emptyNewDay).toEqual([]);
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
    // One error for the message, listing what it refused and why.
    const errors = t.messages.filter((e) => e.type === 'error').map((e) => e.data);
    expect(errors).toEqual([
      {
        code: 'forbidden_channel',
        message: '2 of 4 channels refused: not allowed by the token; no such channel',
        refused: { forbidden_channel: ['symbol:TSLA'], unknown_channel: ['board:losers'] },
      },
    ]);
    expect(t.ws.readyState).toBe(WebSocket.OPEN);
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
    expect(dropped.data).toMatchObject({
      code: 'forbidden_channel',
      refused: { forbidden_channel: ['symbol:AAPL'] },
    });
    t.send({ op: 'unsubscribe', channels: ['board:volume', 'symbol:AAPL'] });
    const ack = await t.next(
      (e) => e.type === 'ack' && (e.data as { op: string }).op === 'unsubscribe',
    );
    expect(ack.data).toMatchObject({ channels: ['board:volume'] });
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
