import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { describeFrame } from '../core/index.ts';
import { createMassiveServer, type MassiveServerOptions } from './massive-server.ts';

interface Peer {
  ws: WebSocket;
  /** The next frame not yet read, parsed when it is JSON. */
  next(timeoutMs?: number): Promise<unknown>;
  /** Resolves with the close code. */
  closed: Promise<number>;
  send(message: unknown): void;
}

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function serve(options: MassiveServerOptions = {}) {
  const server = await createMassiveServer(options);
  cleanups.push(() => server.close());
  return server;
}

async function connect(url: string): Promise<Peer> {
  const ws = new WebSocket(url);
  const frames: string[] = [];
  const waiting: ((frame: string) => void)[] = [];
  ws.on('message', (data) => {
    const text = (data as Buffer).toString();
    const waiter = waiting.shift();
    if (waiter === undefined) frames.push(text);
    else waiter(text);
  });
  const closed = new Promise<number>((resolve) => ws.on('close', resolve));
  cleanups.push(() => Promise.resolve(ws.terminate()));
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  const next = (timeoutMs = 2000) =>
    new Promise<unknown>((resolve, reject) => {
      const parse = (text: string) => resolve(text.startsWith('[') ? JSON.parse(text) : text);
      const queued = frames.shift();
      if (queued !== undefined) return parse(queued);
      const timer = setTimeout(() => reject(new Error('no frame in time')), timeoutMs);
      waiting.push((text) => {
        clearTimeout(timer);
        parse(text);
      });
    });
  return { ws, next, closed, send: (message) => ws.send(JSON.stringify(message)) };
}

/** Connects and authenticates with the server's default key; returns after `auth_success`. */
async function authenticated(url: string): Promise<Peer> {
  const peer = await connect(url);
  await peer.next();
  peer.send({ action: 'auth', params: 'test-key' });
  expect(await peer.next()).toEqual([
    { ev: 'status', status: 'auth_success', message: 'authenticated' },
  ]);
  return peer;
}

const status = (value: string, message: string) => ({ ev: 'status', status: value, message });

describe('createMassiveServer', () => {
  it('greets with connected, then fails a wrong key and drops the connection', async () => {
    const server = await serve({ apiKey: 'right' });
    expect(server.url).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/);
    const peer = await connect(server.url);
    expect(await peer.next()).toEqual([status('connected', 'Connected Successfully')]);
    peer.send({ action: 'auth', params: 'wrong' });
    expect(await peer.next()).toEqual([status('auth_failed', 'authentication failed')]);
    expect(await peer.closed).toBe(1006);
    expect(server.clients).toBe(0);
  });

  it('answers auth_required before auth and one success per topic in one frame after', async () => {
    const server = await serve();
    const peer = await connect(server.url);
    await peer.next();
    peer.send({ action: 'subscribe', params: 'A.*' });
    expect(await peer.next()).toEqual([status('auth_required', 'please authenticate')]);
    peer.send({ action: 'auth', params: 'test-key' });
    await peer.next();
    expect(server.clients).toBe(1);
    peer.send({ action: 'subscribe', params: 'A.*,T.*' });
    expect(await peer.next()).toEqual([
      status('success', 'subscribed to: A.*'),
      status('success', 'subscribed to: T.*'),
    ]);
    await server.waitForSubscribers(1, 1000);
  });

  it('refuses topics not entitled and ignores topics it does not answer', async () => {
    const server = await serve({
      entitled: (topic) => topic !== 'Q.*',
      answered: (topic) => topic !== 'ZZ.*',
    });
    const peer = await authenticated(server.url);
    peer.send({ action: 'subscribe', params: 'Q.*,ZZ.*,A.*' });
    expect(await peer.next()).toEqual([
      status('error', 'not authorized: Q.*'),
      status('success', 'subscribed to: A.*'),
    ]);
  });

  it('lets the newest connection win: the older gets max_connections and is closed', async () => {
    const server = await serve();
    const older = await authenticated(server.url);
    const newer = await authenticated(server.url);
    expect(await older.next()).toEqual([
      status('max_connections', 'Maximum number of connections exceeded.'),
    ]);
    expect(await older.closed).toBe(1000);
    expect(newer.ws.readyState).toBe(WebSocket.OPEN);
    expect(server.clients).toBe(1);
    expect(server.connections).toBe(2);
  });

  it('closes a connection that does not authenticate in time with auth_timeout', async () => {
    const server = await serve({ authTimeoutMs: 50 });
    const peer = await connect(server.url);
    await peer.next();
    expect(await peer.next()).toEqual([status('auth_timeout', 'no authentication received')]);
    expect(await peer.closed).toBe(1000);
  });

  it('sends frames only to subscribed clients, strings as they are', async () => {
    const server = await serve();
    const subscribed = await authenticated(server.url);
    subscribed.send({ action: 'subscribe', params: 'A.*' });
    await subscribed.next();
    const idle = await connect(server.url);
    await idle.next();
    await server.waitForSubscribers(1, 1000);
    server.send('not json');
    server.send([{ ev: 'A', sym: 'AAPL' }]);
    expect(await subscribed.next()).toBe('not json');
    expect(await subscribed.next()).toEqual([{ ev: 'A', sym: 'AAPL' }]);
    await expect(idle.next(100)).rejects.toThrow(/no frame/);
  });

  it('sends a status and closes, or drops every connection abruptly', async () => {
    const server = await serve();
    const first = await authenticated(server.url);
    server.sendStatus('slow_consumer', 'too slow', true);
    expect(await first.next()).toEqual([status('slow_consumer', 'too slow')]);
    expect(await first.closed).toBe(1000);
    const second = await authenticated(server.url);
    server.dropConnections();
    expect(await second.closed).toBe(1006);
  });

  it('filters broadcast frames by topic and symbol, and passes a fully covered frame untouched', async () => {
    const server = await serve();
    const peer = await authenticated(server.url);
    peer.send({ action: 'subscribe', params: 'T.BRK.B,A.MSFT' });
    await peer.next();
    await server.waitForSubscribers(1, 1000);
    const text =
      '[{"ev":"T","sym":"BRK.B","p":1},{"ev":"A","sym":"BRK.B"},{"ev":"A","sym":"MSFT"},{"ev":"T", "sym":"AAPL"}]';
    const data = Buffer.from(text);
    server.broadcast({ data, ...describeFrame(data) });
    expect(await peer.next()).toEqual([
      { ev: 'T', sym: 'BRK.B', p: 1 },
      { ev: 'A', sym: 'MSFT' },
    ]);
    peer.send({ action: 'subscribe', params: 'A.*,T.*' });
    await peer.next();
    // Spacing and field order survive on the untouched path: the bytes are the recording's.
    const raw = new Promise((resolve) =>
      peer.ws.once('message', (d: Buffer) => resolve(d.toString())),
    );
    server.broadcast({ data, ...describeFrame(data) });
    expect(await raw).toBe(text);
    await peer.next();
    // A frame holding a recorded status is never replayed as is: the status is cut out.
    const withStatus = Buffer.from('[{"ev":"status","status":"success"},{"ev":"T","sym":"X"}]');
    server.broadcast({ data: withStatus, ...describeFrame(withStatus) });
    expect(await peer.next()).toEqual([{ ev: 'T', sym: 'X' }]);
    peer.send({ action: 'unsubscribe', params: 'T.*' });
    await peer.next();
    server.broadcast({ data: withStatus, ...describeFrame(withStatus) });
    await expect(peer.next(100)).rejects.toThrow(/no frame/);
    expect(server.stats).toMatchObject({ framesSent: 3, eventsSent: 7, framesFiltered: 3 });
  });

  it('disconnects a slow consumer with the slow_consumer status', async () => {
    const server = await serve({
      apiKey: 'k',
      slowConsumerBytes: 256 * 1024,
      slowConsumerGraceMs: 200,
    });
    const peer = await connect(server.url);
    await peer.next();
    peer.send({ action: 'auth', params: 'k' });
    await peer.next();
    peer.send({ action: 'subscribe', params: 'T.*' });
    await peer.next();
    await server.waitForSubscribers(1, 1000);
    peer.ws.pause();
    // Paused reads fill the kernel buffers, then the server's own: past the limit it cuts the client.
    const data = Buffer.from(JSON.stringify([{ ev: 'T', sym: 'X', pad: 'x'.repeat(64 * 1024) }]));
    for (let i = 0; i < 2000 && server.stats.slowConsumerCloses === 0; i++) {
      server.broadcast({ data, events: 1, types: describeFrame(data).types });
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(server.stats.slowConsumerCloses).toBe(1);
    peer.ws.resume();
    expect(await peer.closed).toBeGreaterThanOrEqual(1000);
    expect(server.clients).toBe(0);
  });

  it('rejects waitForSubscribers after its timeout and closes idempotently', async () => {
    const server = await serve();
    await expect(server.waitForSubscribers(1, 50)).rejects.toThrow(/0 of 1 subscribers/);
    const closing = server.close();
    expect(server.close()).toBe(closing);
    await closing;
  });
});
