import type { Socket } from 'node:net';
import { describe, expect, it, vi } from 'vitest';
import { WebSocket } from 'ws';
import { BOARD_NAMES, FEED_DEFAULTS } from '../../core/index.ts';
import { DATE, Trader, useFeedTest, view } from '../../testing/feed.ts';

describe('trader feed', () => {
  const { iso, cleanups, serve, trader, token, market } = useFeedTest();

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

    // Browsers from another site are refused; the page's own (loopback) origin is not.
    await expect(trader(url, undefined, { Origin: 'https://evil.example' }).opened).rejects.toThrow(
      'HTTP 403',
    );
    const own = trader(url, undefined, { Origin: `http://127.0.0.1:${port}` });
    await own.opened;
    own.ws.close();
    await own.closed;
    // Connections per address: the fourth is refused before the upgrade.
    const open = [trader(url), trader(url), trader(url)];
    await Promise.all(open.map((o) => o.opened));
    await expect(trader(url).opened).rejects.toThrow('HTTP 429');
    for (const o of open) o.ws.close();
    await Promise.all(open.map((o) => o.closed));
    await vi.waitFor(() => expect(feed.stats().addresses).toBe(0));
    await trader(url).opened;
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

  it('conflates a client that stops reading, then closes it 1013, with the default limits', async () => {
    const box = iso();
    const m = market(box);
    const syms = Array.from({ length: 40 }, (_, n) => `S${n}`);
    let k = 0;
    const round = () =>
      m.bars(Object.fromEntries(syms.map((s, n) => [s, 100 + ((n * 7 + ++k) % 50)])));
    await round();
    // Every limit at its default, the cadence too.
    const { url, feed } = await serve({ limits: { cadenceMs: FEED_DEFAULTS.cadenceMs } });
    const channels = BOARD_NAMES.map((board) => `board:${board}`);
    const reader = trader(url, await token(600, undefined, 'reader'));
    const stalled = trader(url, await token(600, undefined, 'stalled'));
    await Promise.all([reader.opened, stalled.opened]);
    for (const t of [reader, stalled]) t.send({ op: 'subscribe', channels });
    for (const t of [reader, stalled])
      await t.next((e) => e.channel === 'board:volume' && e.type === 'snapshot');
    // The boards move every 100 ms from here on.
    let moving = true;
    const mover = (async () => {
      while (moving) {
        await round();
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    cleanups.push(async () => {
      moving = false;
      await mover;
    });
    const socket = (stalled.ws as unknown as { _socket: Socket })._socket;
    // It stops reading: a few board updates are megabytes short of filling the kernel's
    // buffers, so only its unanswered probe shows it behind. Its updates are held back.
    socket.pause();
    await vi.waitFor(() => expect(feed.stats().conflations).toBeGreaterThan(0), {
      timeout: 10_000,
      interval: 20,
    });
    expect(feed.stats()).toMatchObject({ slowCloses: 0, deadPeers: 0 });
    // Reading again, it catches up with one fresh snapshot per channel that moved, no seq gap.
    const snapshots = stalled.of('board:gainers', 'snapshot').length;
    socket.resume();
    await vi.waitFor(() =>
      expect(stalled.of('board:gainers', 'snapshot').length).toBe(snapshots + 1),
    );
    for (const channel of channels) {
      const seqs = stalled.of(channel).map((e) => e.seq);
      expect(seqs).toEqual(seqs.map((_, n) => n + 1));
    }
    // It stops for good: conflated again, then closed with 1013 and counted as slow.
    const conflations = feed.stats().conflations;
    socket.pause();
    await vi.waitFor(() => expect(feed.stats().slowCloses).toBe(1), {
      timeout: 20_000,
      interval: 20,
    });
    expect(feed.stats().conflations).toBeGreaterThan(conflations);
    expect(feed.stats().deadPeers).toBe(0);
    socket.resume();
    expect(await stalled.closed).toEqual({ code: 1013, reason: 'client too slow' });
    // The reader kept its cadence throughout: updates only, no catch-up snapshot, no gap.
    expect(reader.ws.readyState).toBe(WebSocket.OPEN);
    expect(reader.of('board:gainers', 'snapshot')).toHaveLength(1);
    const seqs = reader.of('board:gainers').map((e) => e.seq);
    expect(seqs.length).toBeGreaterThan(20);
    expect(seqs).toEqual(seqs.map((_, n) => n + 1));
  }, 60_000);

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
});
