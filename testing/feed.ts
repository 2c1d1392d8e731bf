import express from 'express';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, expect, vi } from 'vitest';
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
} from '../core/index.ts';
import { createFeed, type Feed } from '../servers/mdp/feed.ts';
import { useIsolation, type Isolation } from './harness.ts';

/** A silent logger for the feed and the publisher under test. */
export const log = pino({ level: 'silent' });
/** The secret the test feeds sign their tokens with. */
export const SECRET = 'feed-test-secret-0123456789abcdef-xyz';
/** The trading date of the test boards. */
export const DATE = '2026-11-24';
/** The test bars' start (the market's open on {@link DATE}). */
export const OPEN = Date.parse('2026-11-24T14:30:00Z');

/** `data` of a board snapshot or update. */
export interface BoardData {
  date: string;
  version: number;
  top: number;
  rows: BoardRow[];
  order?: string[];
}

/** A test client that keeps every envelope it receives. */
export class Trader {
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
export function view(t: Trader, channel: string): BoardRow[] {
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

/**
 * Registers the hooks of a feed test (its own isolation, and cleanup of the feeds and clients it
 * started) and returns the means to start feeds, connect traders, mint tokens and publish boards.
 */
export function useFeedTest() {
  const iso = useIsolation();
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function serve(
    options: {
      insecure?: boolean;
      limits?: Partial<FeedLimits>;
      top?: number;
      allowedOrigins?: string[];
    } = {},
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
      ...(options.allowedOrigins === undefined ? {} : { allowedOrigins: options.allowedOrigins }),
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

  const token = (ttlSeconds = 600, channels?: string[], sub = 'trader') =>
    mintFeedToken(SECRET, {
      sub,
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

  return { iso, cleanups, serve, trader, token, market };
}
