import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { mintFeedToken } from '../core/index.ts';
import { createBoardChurn, type BoardChurn } from '../bench/board-churn.ts';
import { createFeed, type Feed } from '../servers/mdp/feed.ts';
import { useIsolation } from '../testing/harness.ts';
import { runSwarm } from './swarm.ts';

const CHANNELS = ['board:gainers', 'board:volume', 'board:trades'];

describe('swarm against the real feed', () => {
  const iso = useIsolation();
  let server: Server | undefined;
  let feed: Feed | undefined;
  let churn: BoardChurn | undefined;
  afterEach(async () => {
    await churn?.close();
    await feed?.close();
    await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
    [server, feed, churn] = [undefined, undefined, undefined];
  });

  it.each([1, 2])(
    'connects every client, receives updates on every channel with no gaps or disconnects (%i shards)',
    async (shards) => {
      const { redis, redisUrl, names } = iso();
      const log = pino({ level: 'silent' });
      const secret = randomBytes(24).toString('hex');
      churn = createBoardChurn({
        redis,
        names,
        log,
        symbols: 60,
        tradingSymbols: 20,
        intervalMs: 50,
      });
      await churn.start();
      feed = createFeed({ redisUrl, names, log, secret, limits: { cadenceMs: 50 } });
      server = createServer();
      feed.attach(server);
      await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
      await feed.start();
      const { port } = server.address() as AddressInfo;

      const result = await runSwarm({
        url: `ws://127.0.0.1:${port}/ws`,
        clients: 20,
        channels: CHANNELS,
        top: 10,
        durationMs: 2000,
        rampMs: 200,
        warmupMs: 300,
        token: (n) => mintFeedToken(secret, { sub: `swarm-${n}`, ttlSeconds: 60 }),
        shards,
      });

      expect(result.connectFailures).toEqual({});
      expect(result.subscribed).toBe(20);
      // One snapshot per channel and client, then updates; seq counted on every channel.
      expect(result.messages.snapshot).toBeGreaterThanOrEqual(20 * CHANNELS.length);
      expect(result.messages.unparsable).toBe(0);
      expect(result.errors).toEqual({});
      expect(result.gaps).toEqual({ total: 0, missed: 0, outOfOrder: 0, byChannel: {} });
      expect(result.disconnects).toEqual({ total: 0, byCode: {} });
      expect(result.window.snapshots).toBe(0);
      for (const channel of CHANNELS) expect(result.updatesByChannel[channel]).toBeGreaterThan(20);
      expect(result.latencyMs.count).toBe(result.window.updates);
      expect(result.latencyMs.count).toBeGreaterThan(0);
      expect(result.latencyMs.p99).not.toBeNull();
      // Every channel moves every round: well over one update per channel and second per client.
      expect(result.window.updatesPerSecondPerClient).toBeGreaterThan(CHANNELS.length);
      expect(churn.stats.errors).toBe(0);
      expect(result.driver.shards).toBe(shards);
    },
  );
});
