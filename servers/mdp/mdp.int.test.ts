import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import {
  createBatchPublisher,
  createBoardStore,
  encodeBatch,
  parseBoardOptions,
  parseTransportOptions,
  type MarketEvent,
} from '../../core/index.ts';
import { createMassiveServer, type MassiveServer } from '../../replay/massive-server.ts';
import { management, useIsolation } from '../../testing/harness.ts';
import { startTestMdp } from '../../testing/mdp.ts';
import { createMdp, type Mdp } from './app.ts';

const DATE = '2026-11-24';
const OPEN = Date.parse('2026-11-24T14:30:00Z');
const log = pino({ level: 'silent' });

describe('mdp pipeline', () => {
  const iso = useIsolation();
  let server: MassiveServer | undefined;
  let mdp: Mdp | undefined;
  afterEach(async () => {
    await mdp?.close();
    await server?.close();
  });

  const startMdp = async (analyzer = true): Promise<Mdp> => {
    const started = await startTestMdp(iso(), { analyzer });
    ({ server, mdp } = started);
    return started.mdp;
  };

  it('turns a known feed into the hand-computed boards, counting malformed input', async () => {
    const app = await startMdp();
    const store = createBoardStore({
      redis: iso().redis,
      names: iso().names,
      board: parseBoardOptions(),
    });
    await store.setPrevCloses(
      DATE,
      new Map([
        ['AAPL', 100],
        ['BRK.B', 400],
      ]),
    );
    const bar = (sym: string, e: number, av: number, c: number, op?: number): MarketEvent => ({
      ev: 'A',
      sym,
      s: OPEN + e - 1000,
      e: OPEN + e,
      av,
      c,
      ...(op === undefined ? {} : { op }),
    });
    // Out-of-order bars, a corrected bar for the same second, a late official open, a dotted
    // symbol, a symbol without previous close, trades; a malformed frame and a bad event.
    server!.send([
      bar('AAPL', 2000, 300, 101),
      { ev: 'T', sym: 'AAPL', t: OPEN + 1500, p: 101, s: 10 },
    ]);
    server!.send([
      bar('AAPL', 1000, 200, 99, 100),
      bar('BRK.B', 1000, 10, 410),
      bar('BRK.B', 1000, 12, 412),
    ]);
    server!.send('[{"ev":"A","sym":');
    server!.send([
      { ev: 'T', sym: 'AAPL', p: 'bad' },
      bar('TSLA', 1000, 50, 250),
      { ev: 'T', sym: 'TSLA', t: OPEN + 900, p: 250, s: 4 },
    ]);
    await expect
      .poll(async () => (await store.readBoards(DATE)).boards.gainers.length, { timeout: 10_000 })
      .toBe(1);

    const { boards } = await store.readBoards(DATE);
    expect(boards.volume.map((r) => [r.sym, r.score])).toEqual([
      ['AAPL', 300],
      ['TSLA', 50],
      ['BRK.B', 12],
    ]);
    expect(boards.gappers.map((r) => [r.sym, r.score])).toEqual([
      ['BRK.B', ((412 - 400) / 400) * 100],
      ['AAPL', ((101 - 100) / 100) * 100],
    ]);
    expect(boards.gainers.map((r) => [r.sym, r.score])).toEqual([
      ['AAPL', ((101 - 100) / 100) * 100],
    ]);
    expect(boards.trades.map((r) => [r.sym, r.score])).toEqual([
      ['AAPL', 1],
      ['TSLA', 1],
    ]);
    expect(await store.missingPrevCloses(DATE)).toBe(1);

    const health = app.health() as {
      status: string;
      decodeIssues: Record<string, number>;
      massive: { state: string };
      analyzer: { events: number };
    };
    expect(health.status).toBe('ok');
    expect(health.massive.state).toBe('streaming');
    expect(health.decodeIssues).toEqual({ invalid_json: 1, invalid_field: 1 });
    const response = await fetch(`http://127.0.0.1:${app.port}/health`);
    expect(response.status).toBe(200);
    expect(((await response.json()) as { analyzer: { events: number } }).analyzer.events).toBe(7);
    expect((await fetch(`http://127.0.0.1:${app.port}/readyz`)).status).toBe(200);
    expect(await (await fetch(`http://127.0.0.1:${app.port}/healthz`)).text()).toBe('ok\n');
  });

  it('reports a refused API key as fatal, without the key in any message', async () => {
    server = await createMassiveServer({ apiKey: 'right-key' });
    const { amqpUrl, redisUrl, namespace } = iso();
    const fatal: Error[] = [];
    mdp = createMdp({
      massive: { url: server.url, apiKey: 'wrong-key-42', topics: ['A.*'] },
      connection: { amqpUrl, redisUrl, namespace },
      transport: parseTransportOptions(),
      board: parseBoardOptions(),
      analyzer: false,
      group: 'analyzers',
      http: { host: '127.0.0.1', port: 0 },
      prevCloses: { kind: 'none' },
      log,
      onFatal: (error) => fatal.push(error),
    });
    await mdp.start();
    await expect.poll(() => fatal.length, { timeout: 10_000 }).toBe(1);
    expect(fatal[0]!.message).toMatch(/auth/i);
    expect(fatal[0]!.message).not.toContain('wrong-key-42');
    expect(JSON.stringify(mdp.health())).not.toContain('wrong-key-42');
    expect((mdp.health() as { massive: { state: string } }).massive.state).toBe('failed');
  });

  it('loads previous closes from a file at start and ranks gappers with them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'openbell-prev-'));
    const file = join(dir, 'grouped.json');
    writeFileSync(
      file,
      JSON.stringify({ results: [{ T: 'AAPL', c: 100 }, { T: 'MSFT', c: -1 }, { c: 5 }] }),
    );
    try {
      server = await createMassiveServer({ apiKey: 'k-123' });
      const { amqpUrl, redisUrl, namespace, redis, names } = iso();
      mdp = createMdp({
        massive: { url: server.url, apiKey: 'k-123', topics: ['A.*'] },
        connection: { amqpUrl, redisUrl, namespace },
        transport: parseTransportOptions({ batchMaxDelayMs: 5, queueTtlMs: 60_000 }),
        board: parseBoardOptions(),
        analyzer: true,
        group: 'analyzers',
        http: { host: '127.0.0.1', port: 0 },
        prevCloses: { kind: 'file', path: file, date: DATE },
        log,
      });
      await mdp.start();
      await expect
        .poll(() => redis.hgetall(names.prevClose(DATE)), { timeout: 10_000 })
        .toEqual({ AAPL: '100' });
      await server.waitForSubscribers(1);
      server.send([{ ev: 'A', sym: 'AAPL', s: OPEN, e: OPEN + 1000, av: 10, c: 103 }]);
      const store = createBoardStore({ redis, names, board: parseBoardOptions() });
      await expect
        .poll(
          async () => (await store.readBoards(DATE)).boards.gappers.map((r) => [r.sym, r.score]),
          { timeout: 10_000 },
        )
        .toEqual([['AAPL', ((103 - 100) / 100) * 100]]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('declares the analyzers queue at start, so a feed that arrives before any lba waits for it', async () => {
    await startMdp(false);
    server!.send([{ ev: 'T', sym: 'AMD', t: OPEN, p: 150, s: 10 }]);
    const { managementUrl, vhost, names } = iso();
    const queued = async (): Promise<number> => {
      const path = `/api/queues/${vhost}/${encodeURIComponent(names.queue('analyzers'))}`;
      return (
        ((await management(managementUrl, 'GET', path)) as { messages?: number }).messages ?? 0
      );
    };
    await expect.poll(queued, { timeout: 15_000, interval: 250 }).toBe(1);
  });

  it('applies a redelivered batch once: trade counts stay exact', async () => {
    await startMdp();
    const { amqpUrl, names, redis } = iso();
    const store = createBoardStore({ redis, names, board: parseBoardOptions() });
    const publisher = createBatchPublisher({ url: amqpUrl, names, log });
    await publisher.start();
    const trades: MarketEvent[] = [1, 2, 3].map((n) => ({
      ev: 'T',
      sym: 'AMD',
      t: OPEN + n,
      p: 150,
      s: 10,
    }));
    const body = encodeBatch({ v: 1, id: 'same-batch', receivedAtMs: Date.now(), events: trades });
    expect(publisher.tryPublish('T', body, { 'x-openbell-events': 3 })).toBe(true);
    expect(publisher.tryPublish('T', body, { 'x-openbell-events': 3 })).toBe(true);
    await publisher.close();
    await expect
      .poll(async () => Number(await redis.hget(names.market(DATE), 'version')), {
        timeout: 10_000,
      })
      .toBe(1);
    await new Promise((r) => setTimeout(r, 300));
    expect((await store.readBoards(DATE)).boards.trades).toEqual([
      { sym: 'AMD', score: 3, price: null, volume: null },
    ]);
    const health = mdp!.health() as { analyzer: { duplicates: number } };
    expect(health.analyzer.duplicates).toBe(1);
  });
});
