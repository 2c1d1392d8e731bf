import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import {
  createMassiveServer,
  type MassiveServer,
  type MassiveServerOptions,
} from '../replay/massive-server.ts';
import { nextBackoffMs } from './backoff.ts';
import { createDecodeCounts } from './decode.ts';
import { ConfigError } from './errors.ts';
import type { MarketEvent, StatusMessage } from './events.ts';
import {
  createMassiveClient,
  type MassiveClient,
  type MassiveClientOptions,
  type MassiveClientState,
} from './massive-client.ts';

const KEY = 'k3y-SECRET-5f2a9c';

interface Harness {
  server: MassiveServer;
  client: MassiveClient;
  frames: { events: MarketEvent[]; receivedAtMs: number; bytes: number }[];
  statuses: StatusMessage[];
  states: { state: MassiveClientState; detail?: string; atMs: number }[];
}

let logLines: string[] = [];
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  // Every test doubles as a leak check: the key must never reach a log line.
  expect(logLines.join('\n')).not.toContain(KEY);
  logLines = [];
});

function testLog() {
  return pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) });
}

async function setUp(
  serverOptions: MassiveServerOptions = {},
  clientOptions: Partial<MassiveClientOptions> = {},
): Promise<Harness> {
  const server = await createMassiveServer({ apiKey: KEY, ...serverOptions });
  cleanups.push(() => server.close());
  const frames: Harness['frames'] = [];
  const statuses: StatusMessage[] = [];
  const states: Harness['states'] = [];
  const client = createMassiveClient({
    url: server.url,
    apiKey: KEY,
    log: testLog(),
    onEvents: (events, receivedAtMs, bytes) => frames.push({ events, receivedAtMs, bytes }),
    onStatus: (status) => statuses.push(status),
    backoffInitialMs: 20,
    backoffMaxMs: 50,
    ...clientOptions,
  });
  cleanups.push(() => client.close());
  client.onStateChange((state, detail) => states.push({ state, detail, atMs: performance.now() }));
  client.start();
  return { server, client, frames, statuses, states };
}

/** Resolves once `wanted` is the current state or was entered since the call (states may be brief). */
function waitForState(h: Harness, wanted: MassiveClientState, timeoutMs = 3000) {
  const from = h.states.length;
  const seen = () => h.states.slice(from).some((s) => s.state === wanted);
  return waitUntil(() => h.client.state === wanted || seen(), timeoutMs, `state ${wanted}`);
}

async function waitUntil(ready: () => boolean, timeoutMs = 3000, what = 'condition') {
  const deadline = performance.now() + timeoutMs;
  while (!ready()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const aggregate = (sym: string) => ({ ev: 'A', sym, c: 10, av: 1000, s: 1.7e12, e: 1.7e12 + 1000 });

describe('nextBackoffMs', () => {
  it('spreads the delay over [0, initial × 2^attempt) and caps it at the maximum', () => {
    expect(nextBackoffMs(0, 500, 30_000, () => 0)).toBe(0);
    expect(nextBackoffMs(0, 500, 30_000, () => 0.5)).toBe(250);
    expect(nextBackoffMs(3, 500, 30_000, () => 0.999_999)).toBe(3999);
    expect(nextBackoffMs(10, 500, 30_000, () => 0.5)).toBe(15_000);
    expect(nextBackoffMs(1e6, 500, 30_000, () => 0.5)).toBe(15_000);
  });

  it('returns integers within bounds for random draws', () => {
    for (let attempt = 0; attempt < 20; attempt++) {
      const delay = nextBackoffMs(attempt, 100, 5000);
      expect(Number.isInteger(delay)).toBe(true);
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThan(Math.min(5000, 100 * 2 ** attempt));
    }
  });
});

describe('createMassiveClient', () => {
  it('rejects invalid options naming the field, without echoing the key', () => {
    const base = { url: 'wss://socket.massive.com/stocks', apiKey: KEY, log: testLog() };
    const onEvents = () => undefined;
    expect(() => createMassiveClient({ ...base, onEvents, apiKey: '' })).toThrow(/apiKey/);
    expect(() => createMassiveClient({ ...base, onEvents, url: KEY })).toThrow(ConfigError);
    expect(() => createMassiveClient({ ...base, onEvents, url: KEY })).not.toThrow(KEY);
    expect(() => createMassiveClient({ ...base, onEvents, topics: ['A*'] })).toThrow(/topics/);
    expect(() => createMassiveClient({ ...base, onEvents, backoffMaxMs: 1 })).toThrow(/backoffMax/);
  });

  it('authenticates, subscribes and streams', async () => {
    const h = await setUp();
    await waitForState(h, 'streaming');
    expect(h.states.map((s) => s.state)).toEqual([
      'connecting',
      'authenticating',
      'subscribing',
      'streaming',
    ]);
    expect(h.client.stats).toMatchObject({ connects: 1, reconnects: 0, unackedTopics: [] });
    expect(h.client.stats.statuses).toMatchObject({ connected: 1, auth_success: 1, success: 2 });
    expect(h.server.clients).toBe(1);
  });

  it('delivers the events and statuses of one mixed frame', async () => {
    const h = await setUp();
    await h.server.waitForSubscribers();
    const frame: unknown[] = [
      aggregate('AAPL'),
      { ev: 'status', status: 'info', message: 'hi' },
      { ev: 'T', sym: 'MSFT', p: 1.5, s: 100, t: 1.7e12 },
    ];
    const before = performance.timeOrigin + performance.now();
    h.server.send(frame);
    await waitUntil(() => h.frames.length === 1);
    const [received] = h.frames;
    expect(received!.events.map((e) => [e.ev, e.sym])).toEqual([
      ['A', 'AAPL'],
      ['T', 'MSFT'],
    ]);
    expect(received!.bytes).toBe(Buffer.byteLength(JSON.stringify(frame)));
    expect(received!.receivedAtMs).toBeGreaterThanOrEqual(before);
    expect(received!.receivedAtMs).toBeLessThan(before + 1000);
    expect(h.statuses.at(-1)).toEqual({ ev: 'status', status: 'info', message: 'hi' });
    expect(h.client.stats).toMatchObject({ frames: 4, events: 2, statuses: { other: 1 } });
  });

  it('hands onFrame the raw bytes of each event frame, before onEvents', async () => {
    const raw: { text: string; receivedAtMs: number; eventsSoFar: number }[] = [];
    const seen: { h?: Harness } = {};
    const onFrame = (data: Buffer, receivedAtMs: number) => {
      const eventsSoFar = seen.h?.frames.length ?? -1;
      raw.push({ text: data.toString('utf8'), receivedAtMs, eventsSoFar });
    };
    const h = (seen.h = await setUp({}, { onFrame }));
    await h.server.waitForSubscribers();
    // Odd spacing and a status in the frame: the bytes must be the wire's, not a re-serialisation.
    const first =
      '[ {"ev":"A","sym":"BRK.B","c":1.5e2, "s":1700000000000} ,{"ev":"status","status":"x"}]';
    h.server.send(first);
    h.server.send([{ ev: 'status', status: 'info', message: 'status only: no frame' }]);
    h.server.send('not json');
    h.server.send([aggregate('AAPL')]);
    await waitUntil(() => h.frames.length === 2);
    expect(raw.map((r) => r.text)).toEqual([first, JSON.stringify([aggregate('AAPL')])]);
    expect(raw.map((r) => r.eventsSoFar)).toEqual([0, 1]); // each call came before its onEvents
    expect(raw.map((r) => r.receivedAtMs)).toEqual(h.frames.map((f) => f.receivedAtMs));
    expect(h.client.stats.callbackErrors).toBe(0);
  });

  it('offers frames to takeFrame once streaming; what it leaves goes to the decoder', async () => {
    const offered: string[] = [];
    const raw: string[] = [];
    const takeFrame = (data: Buffer) => {
      const text = data.toString('utf8');
      offered.push(text);
      // Takes frames of trades only, as if it had read them itself.
      const items = JSON.parse(text) as { ev: string }[];
      return items.every((item) => item.ev === 'T') ? items.length : undefined;
    };
    const h = await setUp({}, { takeFrame, onFrame: (data) => raw.push(data.toString('utf8')) });
    await waitForState(h, 'streaming');
    const trades = [
      { ev: 'T', sym: 'MSFT', p: 1.5, s: 100, t: 1.7e12 },
      { ev: 'T', sym: 'AAPL', p: 2, s: 1, t: 1.7e12 },
    ];
    h.server.send(trades);
    h.server.send([aggregate('AAPL'), { ev: 'status', status: 'info', message: 'hi' }]);
    await waitUntil(() => h.frames.length === 1);
    expect(offered).toEqual([JSON.stringify(trades), expect.stringContaining('"ev":"A"')]);
    // The taken frame never reached onEvents, but it counts and recorders still see it.
    expect(h.frames[0]!.events.map((e) => e.ev)).toEqual(['A']);
    expect(h.statuses.at(-1)).toMatchObject({ status: 'info' });
    expect(h.client.stats).toMatchObject({ events: 3, callbackErrors: 0 });
    expect(raw).toEqual([JSON.stringify(trades), expect.stringContaining('"ev":"A"')]);
  });

  it('counts a frame takeFrame threw on as lost, and streams on', async () => {
    let calls = 0;
    const takeFrame = () => {
      if (++calls === 1) throw new Error('boom');
      return undefined;
    };
    const h = await setUp({}, { takeFrame });
    await waitForState(h, 'streaming');
    h.server.send([aggregate('AAPL')]);
    h.server.send([aggregate('MSFT')]);
    await waitUntil(() => h.frames.length === 1);
    expect(h.frames[0]!.events.map((e) => e.sym)).toEqual(['MSFT']);
    expect(h.client.stats.callbackErrors).toBe(1);
  });

  it('counts a throwing onFrame, logs it once per 10 s, and still delivers the events', async () => {
    const h = await setUp(
      {},
      {
        onFrame: () => {
          throw new Error('boom');
        },
      },
    );
    await h.server.waitForSubscribers();
    h.server.send([aggregate('AAPL')]);
    h.server.send([aggregate('MSFT')]);
    await waitUntil(() => h.frames.length === 2);
    expect(h.client.stats.callbackErrors).toBe(2);
    expect(h.client.state).toBe('streaming');
    const threw = logLines.filter((l) => l.includes('massive callback threw'));
    expect(threw).toHaveLength(1);
    expect(JSON.parse(threw[0]!)).toMatchObject({ callback: 'onFrame', count: 1, suppressed: 0 });
  });

  it('counts malformed frames and keeps streaming', async () => {
    const decodeCounts = createDecodeCounts();
    const h = await setUp({}, { decodeCounts });
    await h.server.waitForSubscribers();
    h.server.send('{"ev":"A"');
    h.server.send('{"ev":"A","sym":"X"}');
    h.server.send([aggregate('OK'), { ev: 'A' }, 42]);
    await waitUntil(() => h.frames.length === 1);
    expect(decodeCounts).toMatchObject({
      invalid_json: 1,
      frame_not_array: 1,
      missing_symbol: 1,
      event_not_object: 1,
    });
    expect(h.frames[0]!.events.map((e) => e.sym)).toEqual(['OK']);
    expect(h.client.stats.decodeIssues).toBe(4);
    expect(h.client.state).toBe('streaming');
  });

  it('reconnects with backoff after an abrupt drop', async () => {
    const h = await setUp();
    await waitForState(h, 'streaming');
    h.server.dropConnections();
    await waitForState(h, 'backoff');
    expect(h.states.find((s) => s.state === 'backoff')?.detail).toMatch(/1006/);
    await waitForState(h, 'streaming');
    expect(h.client.stats).toMatchObject({ connects: 2, reconnects: 1 });
    expect(h.server.connections).toBe(2);
  });

  it('reconnects with backoff after slow_consumer', async () => {
    const h = await setUp();
    await waitForState(h, 'streaming');
    h.server.sendStatus('slow_consumer', 'too slow', true);
    await waitForState(h, 'backoff');
    await waitForState(h, 'streaming');
    expect(h.client.stats.statuses).toMatchObject({ slow_consumer: 1 });
    expect(h.server.connections).toBe(2);
  });

  it('stops for good on auth_failed without leaking the key', async () => {
    const h = await setUp({ apiKey: 'another-key' });
    await waitForState(h, 'failed');
    expect(h.client.error?.message).toMatch(/authentication failed/);
    expect(h.client.error?.message).not.toContain(KEY);
    expect(h.states.at(-1)?.detail).not.toContain(KEY);
    await sleep(200); // Four times the largest backoff: any retry would have connected by now.
    expect(h.server.connections).toBe(1);
    expect(h.client.state).toBe('failed');
    expect(logLines.some((l) => l.includes('massive client failed'))).toBe(true);
  });

  it('cools down after max_connections before reconnecting', async () => {
    const h = await setUp({}, { maxConnectionsCooldownMs: 300, backoffMaxMs: 20 });
    await waitForState(h, 'streaming');
    const rival = new WebSocket(h.server.url);
    rival.on('open', () => rival.send(JSON.stringify({ action: 'auth', params: KEY })));
    await waitForState(h, 'cooldown');
    expect(h.client.stats.statuses).toMatchObject({ max_connections: 1 });
    await sleep(250);
    expect(h.server.connections).toBe(2); // The client and its rival; no retry yet.
    rival.close();
    await waitForState(h, 'streaming');
    const cooldownAt = h.states.find((s) => s.state === 'cooldown')!.atMs;
    const reconnectAt = h.states.findLast((s) => s.state === 'connecting')!.atMs;
    expect(reconnectAt - cooldownAt).toBeGreaterThanOrEqual(290);
    expect(h.server.connections).toBe(3);
  });

  it('logs a refused topic and keeps streaming', async () => {
    const h = await setUp({ entitled: (topic) => topic !== 'T.*' });
    await waitForState(h, 'streaming');
    expect(h.client.stats).toMatchObject({ rejectedTopics: ['T.*'], unackedTopics: [] });
    expect(logLines.some((l) => l.includes('subscription refused') && l.includes('T.*'))).toBe(
      true,
    );
    h.server.send([aggregate('AAPL')]);
    await waitUntil(() => h.frames.length === 1);
  });

  it('streams without waiting for acks that never come, and logs the missing ones', async () => {
    const answered = (topic: string) => !topic.startsWith('XX.');
    const h = await setUp({ answered }, { topics: ['A.*', 'XX.*'], subscribeAckTimeoutMs: 100 });
    await waitForState(h, 'streaming');
    expect(h.client.stats.unackedTopics).toEqual(['XX.*']);
    expect(logLines.some((l) => l.includes('unacknowledged') && l.includes('XX.*'))).toBe(true);
  });

  it('streams as soon as events arrive, even with acks outstanding', async () => {
    const answered = (topic: string) => !topic.startsWith('XX.');
    const options = { topics: ['A.*', 'XX.*'], subscribeAckTimeoutMs: 20_000 };
    const h = await setUp({ answered }, options);
    await h.server.waitForSubscribers();
    h.server.send([aggregate('AAPL')]);
    await waitForState(h, 'streaming', 1000);
    expect(h.frames).toHaveLength(1);
  });

  it('reconnects when no auth_success arrives in time', async () => {
    const silent = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    cleanups.push(() => new Promise((resolve) => silent.close(() => resolve())));
    let accepted = 0;
    silent.on('connection', (ws) => {
      accepted++;
      cleanups.push(() => Promise.resolve(ws.terminate()));
    });
    await new Promise((resolve) => silent.once('listening', resolve));
    const { port } = silent.address() as { port: number };
    const h = await setUp({}, { url: `ws://127.0.0.1:${port}`, authTimeoutMs: 100 });
    await waitUntil(() => accepted >= 2);
    expect(h.states.map((s) => s.state)).toContain('backoff');
    expect(logLines.some((l) => l.includes('no auth_success in time'))).toBe(true);
  });

  it('terminates a connection whose peer stops answering pings', async () => {
    const mute = new WebSocketServer({ host: '127.0.0.1', port: 0, autoPong: false });
    cleanups.push(() => new Promise((resolve) => mute.close(() => resolve())));
    let accepted = 0;
    mute.on('connection', (ws) => {
      accepted++;
      cleanups.push(() => Promise.resolve(ws.terminate()));
      ws.on('message', (data) => {
        const { action } = JSON.parse((data as Buffer).toString()) as { action: string };
        if (action === 'auth') ws.send(JSON.stringify([{ ev: 'status', status: 'auth_success' }]));
      });
    });
    await new Promise((resolve) => mute.once('listening', resolve));
    const { port } = mute.address() as { port: number };
    const url = `ws://127.0.0.1:${port}`;
    const h = await setUp({}, { url, pingIntervalMs: 50, subscribeAckTimeoutMs: 20 });
    await waitUntil(() => accepted >= 2);
    expect(h.states.map((s) => s.state)).toContain('streaming');
    expect(logLines.some((l) => l.includes('keepalive timeout'))).toBe(true);
  });

  it('close() is idempotent, stops reconnecting and leaves no timer behind', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const h = await setUp(
      {},
      { backoffInitialMs: 60_000, backoffMaxMs: 60_000, random: () => 0.9 },
    );
    await waitForState(h, 'streaming');
    h.server.dropConnections();
    await waitForState(h, 'backoff');
    expect(timers()).toBeGreaterThan(before);
    const closing = h.client.close();
    expect(h.client.close()).toBe(closing);
    await closing;
    expect(h.client.state).toBe('closed');
    expect(timers()).toBe(before);
    h.client.start();
    expect(h.client.state).toBe('closed');
  });

  it('close() while streaming closes the socket on both ends', async () => {
    const h = await setUp();
    await waitForState(h, 'streaming');
    await h.client.close();
    await waitUntil(() => h.server.clients === 0, 1000);
    expect(h.client.state).toBe('closed');
    expect(h.states.at(-1)?.state).toBe('closed');
  });
});

/**
 * A server that authenticates, acknowledges every subscribed topic, then drops the connection
 * `dropAfterMs` later (a server that accepts and cuts, or a rival taking the account over).
 */
async function startDroppingServer(dropAfterMs: number, beforeDrop?: (n: number) => void) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  cleanups.push(() => new Promise((resolve) => wss.close(() => resolve())));
  let subscribed = 0;
  wss.on('connection', (ws) => {
    cleanups.push(() => Promise.resolve(ws.terminate()));
    ws.on('message', (data) => {
      const { action, params } = JSON.parse((data as Buffer).toString()) as {
        action: string;
        params: string;
      };
      if (action === 'auth') ws.send(JSON.stringify([{ ev: 'status', status: 'auth_success' }]));
      if (action !== 'subscribe') return;
      const n = ++subscribed;
      const acks = params.split(',').map((topic) => ({
        ev: 'status',
        status: 'success',
        message: `subscribed to: ${topic}`,
      }));
      ws.send(JSON.stringify(acks));
      setTimeout(() => {
        beforeDrop?.(n);
        ws.terminate();
      }, dropAfterMs);
    });
  });
  await new Promise((resolve) => wss.once('listening', resolve));
  const { port } = wss.address() as { port: number };
  return { url: `ws://127.0.0.1:${port}`, subscribed: () => subscribed };
}

/** The reconnect delay the client chose at each entry into `backoff`. */
function backoffDelays(client: MassiveClient): number[] {
  const delays: number[] = [];
  client.onStateChange((state) => {
    if (state === 'backoff') delays.push(client.stats.reconnectDelayMs);
  });
  return delays;
}

describe('createMassiveClient backoff', () => {
  it('grows the delays against a server that acknowledges the subscription and drops', async () => {
    const server = await startDroppingServer(10);
    const options = { backoffInitialMs: 20, backoffMaxMs: 5000, random: () => 0.99 };
    const h = await setUp({}, { url: server.url, ...options });
    const delays = backoffDelays(h.client);
    await waitUntil(() => delays.length >= 5, 5000, 'five drops');
    // Every connection subscribed and streamed before it was cut, and none reset the delays.
    expect(h.states.filter((s) => s.state === 'streaming').length).toBeGreaterThanOrEqual(5);
    expect(delays.slice(0, 5)).toEqual([19, 39, 79, 158, 316]);
    // Five drops within a second: one line, the others held back for the next.
    expect(logLines.filter((l) => l.includes('massive disconnected'))).toHaveLength(1);
  });

  it('starts the delays over once a connection has streamed for backoffResetMs', async () => {
    const clock = { ms: Date.now() };
    // The fourth connection streams for a minute by the injected clock before it is cut.
    const server = await startDroppingServer(10, (n) => {
      if (n === 4) clock.ms += 60_000;
    });
    const h = await setUp(
      {},
      {
        url: server.url,
        backoffInitialMs: 20,
        backoffMaxMs: 5000,
        backoffResetMs: 60_000,
        random: () => 0.99,
        now: () => clock.ms,
      },
    );
    const delays = backoffDelays(h.client);
    await waitUntil(() => delays.length >= 5, 5000, 'five drops');
    expect(delays.slice(0, 5)).toEqual([19, 39, 79, 19, 39]);
  });
});

describe('createMassiveClient stall detection', () => {
  const always = () => true;

  it('drops and reconnects a connection that carries no data while the market is open', async () => {
    const h = await setUp({}, { stallTimeoutMs: 150, sessionOpen: always });
    await waitForState(h, 'streaming');
    await waitUntil(() => h.client.stats.stalls >= 1, 3000, 'a stall');
    await waitForState(h, 'backoff');
    expect(h.states.find((s) => s.state === 'backoff')?.detail).toMatch(/stalled/);
    await waitUntil(() => h.server.connections >= 2, 3000, 'a reconnect');
    const stalled = logLines.filter((l) => l.includes('massive stalled'));
    expect(stalled).toHaveLength(h.client.stats.stalls);
    expect(JSON.parse(stalled[0]!)).toMatchObject({ stallTimeoutMs: 150, level: 40 });
  });

  it('keeps a connection that carries data, however slowly', async () => {
    const h = await setUp({}, { stallTimeoutMs: 150, sessionOpen: always });
    await waitForState(h, 'streaming');
    for (let n = 0; n < 10; n++) {
      h.server.send([aggregate('AAPL')]);
      await sleep(50);
    }
    expect(h.frames).toHaveLength(10);
    expect(h.client.stats.stalls).toBe(0);
    expect(h.server.connections).toBe(1);
  });

  it('expects quiet while the market is closed, and can be turned off', async () => {
    const closed = await setUp({}, { stallTimeoutMs: 50, sessionOpen: () => false });
    const off = await setUp({}, { stallTimeoutMs: 0, sessionOpen: always });
    await waitForState(closed, 'streaming');
    await waitForState(off, 'streaming');
    await sleep(300);
    for (const h of [closed, off]) {
      expect(h.client.stats.stalls).toBe(0);
      expect(h.client.state).toBe('streaming');
      expect(h.server.connections).toBe(1);
    }
  });
});

describe('createMassiveClient logs', () => {
  it('writes a repeated status once per 10 s, with the count of the lines held back', async () => {
    const clock = { ms: Date.now() };
    const h = await setUp({}, { now: () => clock.ms });
    await waitForState(h, 'streaming');
    for (let n = 0; n < 50; n++) h.server.sendStatus('maintenance', `notice ${n}`);
    await waitUntil(() => h.client.stats.statuses['other'] === 50);
    const lines = () =>
      logLines
        .filter((l) => l.includes('"msg":"massive status"'))
        .map((l) => JSON.parse(l) as { message: string; suppressed: number });
    expect(lines()).toMatchObject([{ message: 'notice 0', suppressed: 0 }]);
    clock.ms += 10_000;
    h.server.sendStatus('maintenance', 'notice 50');
    await waitUntil(() => lines().length === 2);
    expect(lines()[1]).toMatchObject({ message: 'notice 50', suppressed: 49 });
  });
});
