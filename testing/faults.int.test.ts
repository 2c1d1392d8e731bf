import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  DEFAULTS,
  computeBoards,
  createBoardStore,
  createNames,
  createRandom,
  parseBoardOptions,
  parseTransportOptions,
  reconcileLedger,
  type ListenerLedger,
  type MarketEvent,
} from '../core/index.ts';
import { createMassiveServer, type MassiveServer } from '../replay/massive-server.ts';
import { freePort, type PrivateService } from '../services/private.ts';
import { createMdp, type Mdp } from '../servers/mdp/app.ts';
import { usePrivateServices } from './private-services.ts';

const BIN = fileURLToPath(new URL('../bin/openbell.mjs', import.meta.url));
const DATE = '2026-11-24';
const OPEN = Date.parse('2026-11-24T14:30:00Z');
const board = { ...DEFAULTS.board, top: 500 };
const PREV_CLOSES = new Map([
  ['S1', 100],
  ['S2', 120],
  ['S3', 140],
]);

/** A deterministic open as wire frames of 50 events: bars and trades over 40 symbols. */
function market(seed: number, events: number): { frames: string[]; events: MarketEvent[] } {
  const random = createRandom(seed);
  const symbols = Array.from({ length: 40 }, (_, i) => `S${i}`);
  const wire: Record<string, unknown>[] = [];
  const decoded: MarketEvent[] = [];
  for (let n = 0; n < events; n++) {
    const sym = symbols[Math.floor(random() ** 2 * symbols.length)]!;
    const at = Math.floor((n / events) * 120_000) + Math.floor(random() * 2000);
    const price = Math.round(1000 + random() * 500) / 10;
    if (random() < 0.25) {
      const e = OPEN + at - (at % 1000) + 1000;
      const op = random() < 0.1 ? { op: 120 } : {};
      wire.push({ ev: 'A', sym, s: e - 1000, e, av: 100 + n, c: price, v: 1, ...op });
      decoded.push({ ev: 'A', sym, s: e - 1000, e, av: 100 + n, c: price, v: 1, ...op });
    } else {
      const size = 1 + Math.floor(random() * 400);
      wire.push({ ev: 'T', sym, t: OPEN + at, p: price, s: size });
      decoded.push({ ev: 'T', sym, t: OPEN + at, p: price, s: size });
    }
  }
  const frames: string[] = [];
  for (let i = 0; i < wire.length; i += 50) frames.push(JSON.stringify(wire.slice(i, i + 50)));
  return { frames, events: decoded };
}

/** The pipeline under test: an mdp (no analyzer) and two `openbell lba` processes. */
interface Pipeline {
  server: MassiveServer;
  mdp: Mdp;
  /** Every mdp this run had (a restarted one first): the ledger sums their listeners. */
  mdps: Mdp[];
  lbas: { child: ChildProcess; port: number }[];
  namespace: string;
  redis: Redis;
}

async function readyStatus(port: number): Promise<number> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/readyz`)).status;
  } catch {
    return 0;
  }
}

async function waitFor(what: string, done: () => Promise<boolean>, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('no silent loss through faults (private Redis and RabbitMQ)', () => {
  const services = usePrivateServices();
  let redis: PrivateService;
  let rabbitmq: PrivateService;
  const children: ChildProcess[] = [];
  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    [redis, rabbitmq] = await Promise.all([
      services.redis({ appendFsync: 'always' }),
      services.rabbitmq(),
    ]);
  }, 120_000);
  afterEach(async () => {
    for (const child of children.splice(0)) child.kill('SIGKILL');
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    // A fault may have left a service down or frozen: the next test starts from a running one.
    redis.resume();
    rabbitmq.resume();
    await Promise.all([redis.start(), rabbitmq.start()]);
  }, 120_000);
  afterAll(() => undefined);

  function startMdp(server: MassiveServer, namespace: string, stallTimeoutMs = 0): Mdp {
    return createMdp({
      massive: {
        url: server.url,
        apiKey: 'test-key',
        topics: ['A.*', 'T.*'],
        stallTimeoutMs,
        sessionOpen: () => true,
        // After a stall, a reconnect late enough (no jitter down to 0) for /readyz to be seen failing.
        backoffInitialMs: stallTimeoutMs > 0 ? 1000 : 50,
        ...(stallTimeoutMs > 0 ? { random: () => 0.99 } : {}),
        backoffMaxMs: 2000,
      },
      connection: { amqpUrl: rabbitmq.url, redisUrl: redis.url, namespace },
      transport: parseTransportOptions({ batchMaxDelayMs: 5, queueTtlMs: 600_000 }),
      board: parseBoardOptions({ publishIntervalMs: 100 }),
      analyzer: false,
      group: 'analyzers',
      http: { host: '127.0.0.1', port: 0 },
      prevCloses: { kind: 'none' },
      log: pino({ level: 'silent' }),
    });
  }

  async function spawnLba(pipeline: Pick<Pipeline, 'namespace'>, port?: number) {
    const httpPort = port ?? (await freePort());
    const child = spawn(
      process.execPath,
      [BIN, 'lba', '--queue-ttl-ms', '600000', '--http-port', String(httpPort)],
      {
        env: {
          ...process.env,
          AMQP_URL: rabbitmq.url,
          REDIS_URL: redis.url,
          OPENBELL_NAMESPACE: pipeline.namespace,
          LOG_LEVEL: 'warn',
        },
        stdio: ['ignore', 'ignore', 'inherit'],
      },
    );
    children.push(child);
    await waitFor('the lba to be ready', async () => (await readyStatus(httpPort)) === 200);
    return { child, port: httpPort };
  }

  async function startPipeline(stallTimeoutMs = 0): Promise<Pipeline> {
    const namespace = `f-${randomBytes(4).toString('hex')}`;
    const server = await createMassiveServer({ apiKey: 'test-key' });
    const client = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    client.on('error', () => undefined);
    const store = createBoardStore({ redis: client, names: createNames({ namespace }), board });
    await store.setPrevCloses(DATE, PREV_CLOSES);
    const mdp = startMdp(server, namespace, stallTimeoutMs);
    const pipeline: Pipeline = { server, mdp, mdps: [mdp], lbas: [], namespace, redis: client };
    cleanups.push(async () => {
      for (const each of pipeline.mdps) await each.close();
      await server.close();
      client.disconnect();
    });
    await mdp.start();
    await server.waitForSubscribers(1, 30_000);
    pipeline.lbas.push(await spawnLba(pipeline), await spawnLba(pipeline));
    return pipeline;
  }

  /**
   * Sends `frames`, running `fault` once a third are out: beside the sending, or, when `blocking`
   * (an upstream that goes silent, an mdp restarting), with the sending paused until it is over.
   * Frames wait while no client is subscribed, as a resumed feed would.
   */
  async function sendThrough(
    pipeline: Pipeline,
    frames: readonly string[],
    fault: () => Promise<void>,
    blocking: boolean,
  ): Promise<void> {
    let faulted: Promise<void> | undefined;
    for (const [n, frame] of frames.entries()) {
      if (n === Math.floor(frames.length / 3)) {
        faulted = fault();
        if (blocking) await faulted;
      }
      await pipeline.server.waitForSubscribers(1, 60_000);
      pipeline.server.send(frame);
      if (n % 20 === 19) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await faulted;
  }

  /** Waits until the ledger balances (every accepted event applied or dropped), then returns it. */
  async function quietLedger(pipeline: Pipeline) {
    const store = createBoardStore({
      redis: pipeline.redis,
      names: createNames({ namespace: pipeline.namespace }),
      board,
    });
    let balance = reconcileLedger({ listeners: [], dates: [] });
    await waitFor(
      'the ledger to balance',
      async () => {
        const listeners = pipeline.mdps.map((m) => m.health()['ledger'] as ListenerLedger);
        const dates = [await store.ledger(DATE).catch(() => ({ applied: -1, dropped: {} }))];
        balance = reconcileLedger({ listeners, dates });
        return balance.accepted > 0 && balance.balanced;
      },
      90_000,
    ).catch(() => undefined);
    return { balance, store };
  }

  /** Runs a fault through the pipeline and checks the rule: nothing lost, boards exact. */
  async function runFault(
    seed: number,
    fault: (pipeline: Pipeline) => Promise<void>,
    options: { stallTimeoutMs?: number; blocking?: boolean } = {},
  ) {
    const pipeline = await startPipeline(options.stallTimeoutMs);
    const { frames, events } = market(seed, 30_000);
    await sendThrough(pipeline, frames, () => fault(pipeline), options.blocking ?? false);
    const { balance, store } = await quietLedger(pipeline);
    expect(balance).toMatchObject({ accepted: events.length, balanced: true, unaccounted: 0 });
    expect(balance.dropped).toEqual({});
    await store.refreshMomentum(DATE);
    expect(await store.readBoards(DATE, 500)).toEqual(
      computeBoards(events, DATE, PREV_CLOSES, board),
    );
    return pipeline;
  }

  /** Polls `port`'s /readyz while `during` runs; returns every status seen. */
  async function readyDuring(ports: () => number[], during: () => Promise<void>) {
    const seen = new Set<number>();
    let polling = true;
    const poll = (async () => {
      while (polling) {
        for (const port of ports()) seen.add(await readyStatus(port));
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    try {
      await during();
    } finally {
      polling = false;
      await poll;
    }
    return seen;
  }

  it.each([
    ['rabbitmq-restart', (service: PrivateService) => service.stop()],
    ['rabbitmq-kill', (service: PrivateService) => service.kill()],
  ])(
    '%s: batches survive in durable queues, unconfirmed ones are resent, /readyz 503 while down',
    async (_kind, down) => {
      let seen = new Set<number>();
      const pipeline = await runFault(11, async (p) => {
        seen = await readyDuring(
          () => [p.mdp.port, ...p.lbas.map((l) => l.port)],
          async () => {
            await down(rabbitmq);
            await new Promise((resolve) => setTimeout(resolve, 3000));
            await rabbitmq.start();
          },
        );
      });
      expect(seen).toContain(503);
      for (const port of [pipeline.mdp.port, ...pipeline.lbas.map((l) => l.port)])
        await waitFor('ready again', async () => (await readyStatus(port)) === 200);
    },
    180_000,
  );

  it('redis-restart: the append-only file keeps every applied batch, /readyz 503 while down', async () => {
    let seen = new Set<number>();
    const pipeline = await runFault(12, async (p) => {
      seen = await readyDuring(
        () => p.lbas.map((l) => l.port),
        async () => {
          await redis.stop();
          await new Promise((resolve) => setTimeout(resolve, 3000));
          await redis.start();
        },
      );
    });
    expect(seen).toContain(503);
    for (const { port } of pipeline.lbas)
      await waitFor('ready again', async () => (await readyStatus(port)) === 200);
  }, 180_000);

  it('redis-pause: applies stall and resume, /readyz 503 while frozen', async () => {
    let seen = new Set<number>();
    await runFault(13, async (p) => {
      seen = await readyDuring(
        () => p.lbas.map((l) => l.port),
        async () => {
          redis.pause();
          await new Promise((resolve) => setTimeout(resolve, 5000));
          redis.resume();
        },
      );
    });
    expect(seen).toContain(503);
  }, 180_000);

  it('lba-kill: a killed analyzer loses nothing; its batches are redelivered and applied once', async () => {
    await runFault(14, async (p) => {
      const [victim] = p.lbas;
      victim!.child.kill('SIGKILL');
      await new Promise((resolve) => victim!.child.once('exit', resolve));
      await new Promise((resolve) => setTimeout(resolve, 1000));
      p.lbas[0] = await spawnLba(p);
    });
  }, 180_000);

  it('mdp-restart: what the first mdp accepted is published before it stops', async () => {
    await runFault(
      15,
      async (p) => {
        await p.mdp.close();
        const next = startMdp(p.server, p.namespace);
        p.mdps.push(next);
        p.mdp = next;
        await next.start();
      },
      { blocking: true },
    );
  }, 180_000);

  it('massive-stall: a silent upstream is detected, /readyz 503, and the feed resumes on a new connection', async () => {
    let seen = new Set<number>();
    const pipeline = await runFault(
      16,
      async (p) => {
        // Silence: the connection stays open (pings answered), no data while the test waits.
        expect(p.server.clients).toBe(1);
        // The quiet start (no data before the first frame) may already have counted a stall.
        const before = (p.mdp.health()['massive'] as { stalls: number }).stalls;
        seen = await readyDuring(
          () => [p.mdp.port],
          async () => {
            await waitFor('the stall to be detected', () => {
              const massive = p.mdp.health()['massive'] as { stalls: number };
              return Promise.resolve(massive.stalls > before);
            });
            await p.server.waitForSubscribers(1, 30_000);
          },
        );
      },
      { stallTimeoutMs: 1500, blocking: true },
    );
    expect(seen).toContain(503);
    expect((pipeline.mdp.health()['massive'] as { stalls: number }).stalls).toBeGreaterThanOrEqual(
      1,
    );
    await waitFor('ready again', async () => (await readyStatus(pipeline.mdp.port)) === 200);
  }, 180_000);
});
