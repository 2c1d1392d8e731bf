import express from 'express';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  BOARD_NAMES,
  createBoardPublisher,
  createBoardStore,
  mintFeedToken,
  parseBoardOptions,
  readSymbolStates,
  type BoardName,
  type BoardPublisher,
  type BoardStore,
  type MarketEvent,
} from '../../core/index.ts';
import { ensureChromium } from '../../testing/chromium.ts';
import { useIsolation } from '../../testing/harness.ts';
import { createTcpProxy, type TcpProxy } from '../../testing/tcp-proxy.ts';
import { createFeed, type Feed } from './feed.ts';
import { servePage } from './page.ts';

const DATE = '2026-11-24';
const OPEN = Date.parse('2026-11-24T14:30:00Z'); // 09:30 ET
const TOP = 20;
const SECRET = randomBytes(32).toString('hex');
const SCREENSHOT = fileURLToPath(new URL('../../test-results/feed-page.png', import.meta.url));
const log = pino({ level: 'silent' });

const bar = (sym: string, e: number, av: number, c: number, op: number): MarketEvent => ({
  ev: 'A',
  sym,
  s: OPEN + e - 1000,
  e: OPEN + e,
  av,
  v: 1,
  c,
  op,
});
const trade = (sym: string, t: number, p: number, s: number): MarketEvent => ({
  ev: 'T',
  sym,
  t: OPEN + t,
  p,
  s,
});

interface ShownRow {
  sym: string;
  score: number;
  cells: string[];
}

// Runs in the page (the test's TypeScript has no DOM types, so it travels as text).
const READ_BOARDS = `Object.fromEntries([...document.querySelectorAll('[data-board]')].map((section) => [
  section.dataset.board,
  [...section.querySelectorAll('tbody tr')].map((tr) => ({
    sym: tr.dataset.sym,
    score: Number(tr.dataset.score),
    cells: [...tr.cells].map((td) => td.textContent),
  })),
]))`;
const READ_SYMBOL = `Object.fromEntries([...document.querySelectorAll('[data-testid="symbol-state"] [data-field]')]
  .map((item) => [item.dataset.field, item.dataset.value]))`;
const shownBoards = (page: Page): Promise<Record<BoardName, ShownRow[]>> =>
  page.evaluate<Record<BoardName, ShownRow[]>>(READ_BOARDS);

const pct = new Intl.NumberFormat('en-US', {
  minimumFractionDigits: 2,
  maximumFractionDigits: 2,
  signDisplay: 'exceptZero',
});
const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

describe('trader page', () => {
  const iso = useIsolation();
  let browser: Browser | undefined;
  let context: BrowserContext | undefined;
  let feed: Feed | undefined;
  let server: Server | undefined;
  let publisher: BoardPublisher | undefined;
  let proxy: TcpProxy | undefined;

  beforeAll(async () => {
    // On a fresh machine this installs Debian's chromium package first.
    const executablePath = await ensureChromium();
    browser = await chromium.launch({
      executablePath,
      headless: true,
      args: ['--no-sandbox', '--disable-background-networking'],
    });
  }, 600_000);

  afterAll(async () => {
    await browser?.close();
  });

  afterEach(async () => {
    await context?.close();
    await proxy?.close();
    await feed?.close();
    await publisher?.close();
    if (server !== undefined) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server!.close(() => resolve()));
    }
    context = feed = server = publisher = proxy = undefined;
  });

  /** The page and the feed on one HTTP server, as the mdp serves them. */
  const startServer = async (): Promise<string> => {
    const { redisUrl, names } = iso();
    const app = express();
    servePage(app);
    server = createServer(app);
    feed = createFeed({ redisUrl, names, log, secret: SECRET, limits: { cadenceMs: 100 } });
    feed.attach(server);
    await new Promise<void>((resolve, reject) => {
      server!.once('error', reject);
      server!.listen(0, '127.0.0.1', resolve);
    });
    await feed.start();
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };

  const openPage = async (url: string): Promise<{ page: Page; problems: string[] }> => {
    context = await browser!.newContext({ viewport: { width: 1600, height: 1000 } });
    const page = await context.newPage();
    // Script errors and CSP violations (reported on the console) fail the test.
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(error.message));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(message.text());
    });
    const response = await page.goto(url);
    expect(response?.status()).toBe(200);
    const csp = response?.headers()['content-security-policy'] ?? '';
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("default-src 'none'");
    return { page, problems };
  };

  const seed = async (store: BoardStore): Promise<void> => {
    await store.setPrevCloses(
      DATE,
      new Map([
        ['AAPL', 100],
        ['MSFT', 50],
        ['NVDA', 200],
        ['TSLA', 200],
        ['BRK.B', 400],
        ['AMD', 25],
      ]),
    );
    await store.applyBatch({
      v: 1,
      id: 'seed',
      receivedAtMs: OPEN,
      events: [
        bar('AAPL', 1000, 300, 101, 100),
        bar('MSFT', 1000, 550, 50.5, 49),
        bar('NVDA', 1000, 80, 190, 180),
        bar('TSLA', 1000, 900, 250, 240),
        bar('BRK.B', 1000, 10, 410, 405),
        trade('AAPL', -400_000, 100, 10),
        trade('MSFT', -350_000, 50, 20),
        trade('AAPL', 500, 101, 20),
        trade('AAPL', 900, 101, 5),
        trade('MSFT', 800, 50.5, 100),
        trade('TSLA', 700, 250, 3),
      ],
    });
  };

  const expectBoardsShown = async (page: Page, store: BoardStore): Promise<void> => {
    const expected = (await store.readBoards(DATE, TOP)).boards;
    // Symbols in order, with their scores.
    const ranked = (boards: Record<BoardName, { sym: string; score: number }[]>) =>
      Object.fromEntries(
        BOARD_NAMES.map((name) => [name, boards[name].map((row) => [row.sym, row.score])]),
      );
    await expect
      .poll(async () => ranked(await shownBoards(page)), { timeout: 10_000 })
      .toEqual(ranked(expected));
    const shown = await shownBoards(page);
    // Rank, symbol, formatted score, price and volume.
    const top = expected.gainers[0]!;
    expect(shown.gainers[0]!.cells).toEqual([
      '1',
      top.sym,
      `${pct.format(top.score)}%`,
      top.price!.toFixed(2),
      int.format(top.volume!),
    ]);
    expect(shown.volume[0]!.cells[2]).toBe(int.format(expected.volume[0]!.score));
  };

  /** Seeded boards, published once; `move` applies a change and publishes it. */
  const startData = async () => {
    const { redis, names } = iso();
    const store = createBoardStore({ redis, names, board: parseBoardOptions() });
    const boards = createBoardPublisher({ redis, store, names, log, date: () => DATE });
    publisher = boards;
    await seed(store);
    await boards.tick();
    let moves = 0;
    const move = async (events: MarketEvent[]): Promise<void> => {
      await store.applyBatch({ v: 1, id: `move-${++moves}`, receivedAtMs: OPEN, events });
      // Past the publisher's interval (its lock), so this round publishes.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(await boards.tick()).not.toEqual([]);
    };
    return { store, move };
  };

  const liveToken = () => mintFeedToken(SECRET, { sub: 'browser', ttlSeconds: 600 });

  it('shows the live boards, their updates and a watched symbol', async () => {
    const { redis, names } = iso();
    const { store, move } = await startData();
    const url = await startServer();
    const token = await liveToken();
    const { page, problems } = await openPage(`${url}/#token=${token}`);

    await page.waitForSelector('[data-testid="status"][data-state="live"]');
    // The token moved from the address bar to session storage.
    expect(new URL(page.url()).hash).toBe('');
    expect(await page.evaluate<string | null>("sessionStorage.getItem('openbell.token')")).toBe(
      token,
    );
    const initial = (await store.readBoards(DATE, TOP)).boards;
    expect(initial.gainers.length).toBeGreaterThanOrEqual(4);
    expect(initial.trades.length).toBeGreaterThanOrEqual(3);
    await expectBoardsShown(page, store);
    await expect.poll(() => page.textContent('[data-testid="date"]')).toBe(DATE);
    await expect
      .poll(() => page.textContent('[data-testid="age"]'), { timeout: 5000 })
      .toMatch(/^data \d+ s old$/);

    await page.fill('[data-testid="symbol-input"]', 'aapl');
    await page.press('[data-testid="symbol-input"]', 'Enter');
    const aaplPrice = '[data-testid="symbol-state"][data-sym="AAPL"] [data-field="price"]';
    await expect.poll(() => page.getAttribute(aaplPrice, 'data-value')).toBe('101');

    // AAPL jumps to the top of the gainers; AMD enters; BRK.B does not change.
    const aaplFlashed = page.waitForSelector(
      '[data-testid="board-gainers"] tr[data-sym="AAPL"].flash',
      { state: 'attached', timeout: 10_000 },
    );
    await move([bar('AAPL', 2000, 700, 120, 100), bar('AMD', 2000, 50, 30, 20)]);
    await aaplFlashed;
    expect(
      await page.locator('[data-testid="board-gainers"] tr.flash[data-sym="BRK.B"]').count(),
    ).toBe(0);
    await expectBoardsShown(page, store);
    const gainers = (await shownBoards(page)).gainers.map((row) => row.sym);
    expect(gainers.slice(0, 2)).toEqual(['AMD', 'AAPL']);

    await expect.poll(() => page.getAttribute(aaplPrice, 'data-value')).toBe('120');
    // Every field of the symbol's state, as core reads it from Redis.
    const [aapl] = await readSymbolStates(redis, names, DATE, ['AAPL']);
    const expected = Object.entries(aapl!).filter(([k]) => k !== 'sym' && k !== 'date');
    const shownFields = await page.evaluate<Record<string, string>>(READ_SYMBOL);
    expect(shownFields).toEqual(
      Object.fromEntries(expected.map(([k, v]) => [k, v === null ? '' : String(v)])),
    );
    expect(shownFields['prevClose']).toBe('100');
    expect(await page.textContent('[data-testid="symbol-state"] [data-field="changePct"] dd')).toBe(
      '+20.00%',
    );

    mkdirSync(dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(problems).toEqual([]);
  }, 120_000);

  it('reconnects with backoff after the line drops, and shows the boards again', async () => {
    const { store } = await startData();
    const url = new URL(await startServer());
    proxy = await createTcpProxy(url.hostname, Number(url.port));
    const { page } = await openPage(`http://127.0.0.1:${proxy.port}/#token=${await liveToken()}`);
    await page.waitForSelector('[data-testid="status"][data-state="live"]');
    await expectBoardsShown(page, store);

    proxy.down();
    await page.waitForSelector('[data-testid="status"][data-state="reconnecting"]');
    await new Promise((resolve) => setTimeout(resolve, 700)); // a refused attempt or two
    proxy.up();
    await page.waitForSelector('[data-testid="status"][data-state="live"]', { timeout: 15_000 });
    expect(feed!.stats().connections).toBe(2);
    await expectBoardsShown(page, store);
  }, 120_000);

  it('resubscribes a channel whose seq jumped, and gets back in step', async () => {
    const { store, move } = await startData();
    const url = await startServer();
    context = await browser!.newContext();
    const page = await context.newPage();
    const fromPage: unknown[] = [];
    let dropped = 0;
    await page.routeWebSocket(/\/ws$/, (route) => {
      const server = route.connectToServer();
      route.onMessage((message) => {
        fromPage.push(JSON.parse(String(message)));
        server.send(message);
      });
      server.onMessage((message) => {
        const envelope = JSON.parse(String(message)) as { type: string; channel: string };
        // Lose the first update of the gainers, as a faulty relay would.
        if (envelope.type === 'update' && envelope.channel === 'board:gainers' && dropped === 0) {
          dropped++;
          return;
        }
        route.send(message);
      });
    });
    await page.goto(`${url}/#token=${await liveToken()}`);
    await page.waitForSelector('[data-testid="status"][data-state="live"]');
    await expectBoardsShown(page, store);

    await move([bar('NVDA', 2000, 90, 250, 180)]);
    await expect.poll(() => dropped).toBe(1);
    await move([bar('MSFT', 2000, 600, 70, 49)]);
    await expect.poll(() => page.getAttribute('body', 'data-gaps')).toBe('1');
    await expectBoardsShown(page, store);
    expect(fromPage).toContainEqual({
      op: 'unsubscribe',
      channels: ['board:gainers'],
      id: 'resync',
    });
    expect(fromPage).toContainEqual({ op: 'subscribe', channels: ['board:gainers'], id: 'resync' });
  }, 120_000);

  it('says auth failed for a bad token, and does not reconnect', async () => {
    const url = await startServer();
    const forged = await mintFeedToken(randomBytes(32).toString('hex'), {
      sub: 'mallory',
      ttlSeconds: 600,
    });
    const { page } = await openPage(`${url}/#token=${forged}`);
    await page.waitForSelector('[data-testid="status"][data-state="auth-failed"]');
    expect(await page.isVisible('[data-testid="notice"]')).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(feed!.stats().connections).toBe(1);
    expect(feed!.stats().authFailures).toBe(1);
    expect(await page.getAttribute('[data-testid="status"]', 'data-state')).toBe('auth-failed');
  }, 120_000);
});
