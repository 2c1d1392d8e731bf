import { SignJWT } from 'jose';
import { connect, type Socket } from 'node:net';
import { describe, expect, it, vi } from 'vitest';
import { SECRET, useFeedTest, type Trader } from '../../testing/feed.ts';

/** A token signed with the test feeds' secret, with whatever `iat` and `exp` (epoch seconds). */
function signed(claims: { iat?: number; exp: number }): Promise<string> {
  const jwt = new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('mallory')
    .setAudience('openbell-feed')
    .setExpirationTime(claims.exp);
  if (claims.iat !== undefined) jwt.setIssuedAt(claims.iat);
  return jwt.sign(new TextEncoder().encode(SECRET));
}

const acked = (t: Trader, id?: string) =>
  t.next(
    (e) =>
      e.type === 'ack' &&
      (e.data as { op: string; id?: string }).op === 'auth' &&
      (id === undefined || (e.data as { id?: string }).id === id),
  );

describe('trader feed security', () => {
  const { cleanups, serve, trader, token } = useFeedTest();

  /** A raw TCP connection to the feed's port that keeps whatever the server sends. */
  function raw(port: number) {
    const socket: Socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    cleanups.push(async () => {
      socket.destroy();
      await closed;
    });
    return { socket, closed, text: () => Buffer.concat(chunks).toString() };
  }

  it('cuts a connection that does not send its request in time, and counts it against its address', async () => {
    const { url, port, feed } = await serve({
      limits: { headerTimeoutMs: 1500, maxConnectionsPerIp: 2 },
    });
    const partial = raw(port);
    partial.socket.write('GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\n');
    const silent = raw(port);
    await vi.waitFor(() => expect(feed.stats().pendingHandshakes).toBe(2));
    // The address's places are taken by unfinished handshakes: a trader is refused, and so is
    // any other connection from it, answered at once whatever it then asks.
    await expect(trader(url).opened).rejects.toThrow('HTTP 429');
    const elsewhere = raw(port);
    elsewhere.socket.write(
      'GET /elsewhere HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
    );
    const pageAtCap = raw(port);
    pageAtCap.socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await Promise.all([elsewhere.closed, pageAtCap.closed]);
    for (const refused of [elsewhere, pageAtCap])
      expect(refused.text()).toMatch(/^HTTP\/1\.1 429 /);
    await Promise.all([partial.closed, silent.closed]);
    expect(partial.text()).toMatch(/^HTTP\/1\.1 408 /);
    expect(feed.stats()).toMatchObject({
      pendingHandshakes: 0,
      addresses: 0,
      rejected: { headerTimeout: 2, perIp: 3 },
    });
    // A page request is no handshake: it leaves the count as soon as it comes.
    const page = raw(port);
    page.socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    await vi.waitFor(() => expect(page.text()).toMatch(/^HTTP\/1\.1 404 /));
    expect(feed.stats().pendingHandshakes).toBe(0);
    const traders = [trader(url), trader(url)];
    await Promise.all(traders.map((t) => t.opened));
    expect(feed.stats()).toMatchObject({ addresses: 1, pendingHandshakes: 0 });
    // The kept-alive page connection asking for an upgrade now would be a third: refused.
    page.socket.write(
      'GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
        'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    await page.closed;
    expect(page.text()).toContain('HTTP/1.1 429 ');
    expect(feed.stats().rejected.perIp).toBe(4);
  });

  it('admits browser origins from its allow-list only (loopback by default), never trusting Host', async () => {
    const open = (url: string, origin: string, host?: string) =>
      trader(url, undefined, { Origin: origin, ...(host === undefined ? {} : { Host: host }) })
        .opened;
    const loopback = await serve();
    await open(loopback.url, `http://127.0.0.1:${loopback.port}`);
    await open(loopback.url, 'http://localhost:5173');
    await open(loopback.url, 'https://[::1]');
    // DNS rebinding: a foreign page that reaches the feed under its own name sends that name as
    // Host too; the Host header proves nothing.
    const rebound = `rebind.example:${loopback.port}`;
    await expect(open(loopback.url, `http://${rebound}`, rebound)).rejects.toThrow('HTTP 403');
    expect(loopback.feed.stats().rejected.origin).toBe(1);

    const listed = await serve({ allowedOrigins: ['https://scanner.example.com'] });
    await open(listed.url, 'https://scanner.example.com');
    for (const origin of [
      'http://scanner.example.com',
      'https://scanner.example.com:8443',
      `http://127.0.0.1:${listed.port}`,
      'null',
    ])
      await expect(open(listed.url, origin)).rejects.toThrow('HTTP 403');
    // Clients that send no Origin are no browsers: their token is what admits them.
    await trader(listed.url).opened;
    expect(listed.feed.stats().rejected.origin).toBe(4);

    const both = await serve({ allowedOrigins: ['https://scanner.example.com', 'loopback'] });
    await open(both.url, 'https://scanner.example.com');
    await open(both.url, `http://localhost:${both.port}`);
  });

  it('refuses a token that lives past the maximum or was issued in the future', async () => {
    const { url, feed } = await serve();
    const now = Math.floor(Date.now() / 1000);
    const century = await signed({ iat: now, exp: now + 100 * 365 * 86_400 });
    expect(await trader(url, century).closed).toEqual({
      code: 4401,
      reason: 'token lifetime over the limit',
    });
    // By the first message too.
    const byMessage = trader(url);
    await byMessage.opened;
    byMessage.send({ op: 'auth', token: century });
    expect((await byMessage.closed).code).toBe(4401);
    const future = await signed({ iat: now + 3600, exp: now + 7200 });
    expect(await trader(url, future).closed).toEqual({
      code: 4401,
      reason: 'token issued in the future',
    });
    const timeless = await signed({ exp: now + 600 });
    expect(await trader(url, timeless).closed).toEqual({ code: 4401, reason: 'invalid token' });
    expect(feed.stats().authFailures).toBe(4);
    // A day exactly, and a clock a few seconds ahead, are fine.
    await acked(trader(url, await signed({ iat: now, exp: now + 86_400 })));
    await acked(trader(url, await signed({ iat: now + 10, exp: now + 600 })));
    // The maximum is the feed's to set.
    const longer = await serve({ limits: { maxTokenTtlSeconds: 7 * 86_400 } });
    await acked(trader(longer.url, await signed({ iat: now, exp: now + 3 * 86_400 })));
  });

  it('limits connections per token subject, by header and by message, refreshes included', async () => {
    const { url, feed } = await serve({ limits: { maxConnectionsPerSubject: 2 } });
    const ann = () => token(600, undefined, 'ann');
    const first = trader(url, await ann());
    const second = trader(url, await ann());
    await Promise.all([acked(first), acked(second)]);
    expect(await trader(url, await ann()).closed).toEqual({
      code: 4429,
      reason: 'too many connections for this token',
    });
    const byMessage = trader(url);
    await byMessage.opened;
    byMessage.send({ op: 'auth', token: await ann() });
    expect((await byMessage.closed).code).toBe(4429);
    // Another subject has places of its own, and refreshing its token keeps its one place.
    const bob = trader(url, await token(600, undefined, 'bob'));
    await acked(bob);
    bob.send({ op: 'auth', token: await token(600, undefined, 'bob'), id: 'refresh' });
    await acked(bob, 'refresh');
    // A place is free again once a connection closes.
    first.ws.close();
    await first.closed;
    await vi.waitFor(() => expect(feed.stats().clients).toBe(2));
    bob.send({ op: 'auth', token: await ann(), id: 'switch' });
    await acked(bob, 'switch');
    // Bob's place went with the switch; ann's are all taken again.
    const bob2 = trader(url, await token(600, undefined, 'bob'));
    await acked(bob2);
    expect((await trader(url, await ann()).closed).code).toBe(4429);
    expect(feed.stats().rejected.perSubject).toBe(3);
  });

  it('answers a subscribe message with one error for every channel it refused', async () => {
    const { url, feed } = await serve({ limits: { maxSubscriptions: 3 } });
    const t = trader(url, await token(600, ['board:*', 'symbol:AAPL']));
    await acked(t);
    const junk = Array.from({ length: 12 }, (_, n) => `board:nothing-${n}`);
    const request = JSON.stringify({ op: 'subscribe', channels: junk, id: 1 });
    t.send(request);
    const first = await t.next((e) => e.type === 'error');
    expect(first.data).toEqual({
      code: 'unknown_channel',
      message: '12 of 12 channels refused: no such channel',
      refused: { unknown_channel: junk },
      id: 1,
    });
    // One reply, under twice the bytes that came in (one per channel was twelve times as many).
    expect(t.messages.filter((e) => e.type === 'error')).toHaveLength(1);
    expect(JSON.stringify(first).length).toBeLessThan(request.length * 2);
    t.send({
      op: 'subscribe',
      channels: [
        'board:volume',
        'symbol:TSLA',
        'board:gainers',
        'bogus',
        'symbol:AAPL',
        'board:trades',
      ],
      id: 2,
    });
    const ack = await t.next((e) => e.type === 'ack' && (e.data as { id?: number }).id === 2);
    expect((ack.data as { channels: string[] }).channels).toEqual([
      'board:volume',
      'board:gainers',
      'symbol:AAPL',
    ]);
    const errors = t.messages.filter((e) => e.type === 'error');
    expect(errors).toHaveLength(2);
    expect(errors[1]!.data).toEqual({
      code: 'forbidden_channel',
      message:
        '3 of 6 channels refused: not allowed by the token; no such channel; at most 3 channels per connection',
      refused: {
        forbidden_channel: ['symbol:TSLA'],
        unknown_channel: ['bogus'],
        too_many_subscriptions: ['board:trades'],
      },
      id: 2,
    });
    // The error comes before the ack, as the per-channel errors did.
    expect(t.messages.indexOf(errors[1]!)).toBeLessThan(t.messages.indexOf(ack));
    expect(feed.stats().errors).toEqual({ unknown_channel: 1, forbidden_channel: 1 });
  });
});
