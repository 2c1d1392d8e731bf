import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import {
  DEFAULTS,
  declareAnalyzerQueue,
  computeBoards,
  createBatchPublisher,
  createBoardStore,
  createRandom,
  encodeBatch,
  type BoardsView,
  type MarketEvent,
} from '../../core/index.ts';
import { createIsolation, management, type Isolation } from '../../testing/harness.ts';
import { seriesValue } from '../../testing/mdp.ts';

const BIN = fileURLToPath(new URL('../../bin/openbell.mjs', import.meta.url));
const DATE = '2026-11-24';
const OPEN = Date.parse('2026-11-24T14:30:00Z');
const QUEUE_TTL_MS = 600_000;
const log = pino({ level: 'silent' });
const board = { ...DEFAULTS.board, top: 500 };
const children: ChildProcess[] = [];
const isolations: Isolation[] = [];

afterEach(async () => {
  for (const child of children.splice(0)) child.kill('SIGKILL');
  for (const iso of isolations.splice(0)) await iso.cleanup();
});

/** A deterministic open: bars and trades over 30 symbols, in batches of 100 events. */
function market(seed: number, events: number): MarketEvent[][] {
  const random = createRandom(seed);
  const symbols = Array.from({ length: 30 }, (_, i) => (i % 7 === 0 ? `S${i}.A` : `S${i}`));
  const out: MarketEvent[] = [];
  for (let n = 0; n < events; n++) {
    const sym = symbols[Math.floor(random() ** 2 * symbols.length)]!;
    const at = Math.floor((n / events) * 600_000) - 300_000 + Math.floor(random() * 5000);
    if (random() < 0.25) {
      const e = at - (at % 1000) + 1000;
      out.push({
        ev: 'A',
        sym,
        s: OPEN + e - 1000,
        e: OPEN + e,
        av: 100 + n,
        c: Math.round(1000 + random() * 500) / 10,
        ...(random() < 0.1 ? { op: 120 } : {}),
      });
    } else {
      out.push({
        ev: 'T',
        sym,
        t: OPEN + at,
        p: Math.round(1000 + random() * 500) / 10,
        s: 1 + Math.floor(random() * 400),
      });
    }
  }
  const batches: MarketEvent[][] = [];
  for (let i = 0; i < out.length; i += 100) batches.push(out.slice(i, i + 100));
  return batches;
}

function spawnLba(iso: Isolation, args: string[] = []): ChildProcess {
  const argv = [BIN, 'lba', '--queue-ttl-ms', String(QUEUE_TTL_MS), ...args];
  const child = spawn(process.execPath, argv, {
    env: {
      ...process.env,
      AMQP_URL: iso.amqpUrl,
      REDIS_URL: iso.redisUrl,
      OPENBELL_NAMESPACE: iso.namespace,
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.push(child);
  return child;
}

/** Declares the analyzers' queue as `openbell lba` does, then publishes every batch. */
async function publishAll(iso: Isolation, batches: MarketEvent[][]): Promise<void> {
  await declareAnalyzerQueue(iso.amqpUrl, iso.names, 'analyzers', {
    queueTtlMs: QUEUE_TTL_MS,
    queueMaxLength: DEFAULTS.transport.queueMaxLength,
  });
  const publisher = createBatchPublisher({ url: iso.amqpUrl, names: iso.names, log });
  await publisher.start();
  for (const [n, events] of batches.entries()) {
    const body = encodeBatch({ v: 1, id: `batch-${n}`, receivedAtMs: Date.now(), events });
    while (!publisher.tryPublish('T', body, { 'x-openbell-events': events.length }))
      await publisher.whenWritable();
  }
  await publisher.close();
}

async function appliedBatches(iso: Isolation): Promise<number> {
  return iso.redis.scard(iso.names.appliedBatches(DATE));
}

/** The analyzers' queue as the RabbitMQ management API reports it. */
async function analyzersQueue(iso: Isolation): Promise<{
  messages_ready?: number;
  messages_unacknowledged?: number;
  message_stats?: { redeliver?: number };
}> {
  const path = `/api/queues/${iso.vhost}/${encodeURIComponent(iso.names.queue('analyzers'))}`;
  return (await management(iso.managementUrl, 'GET', path)) as Awaited<
    ReturnType<typeof analyzersQueue>
  >;
}

async function boardsOf(iso: Isolation): Promise<BoardsView> {
  const store = createBoardStore({ redis: iso.redis, names: iso.names, board });
  await store.refreshMomentum(DATE);
  return store.readBoards(DATE, 500);
}

describe('lba processes', () => {
  it('yield identical boards, equal to the oracle, whether 1 or 4 analyze the same input', async () => {
    const batches = market(7, 20_000);
    const views: BoardsView[] = [];
    for (const count of [1, 4]) {
      const iso = await createIsolation();
      isolations.push(iso);
      await publishAll(iso, batches);
      for (let i = 0; i < count; i++) spawnLba(iso);
      await expect
        .poll(() => appliedBatches(iso), { timeout: 60_000, interval: 200 })
        .toBe(batches.length);
      views.push(await boardsOf(iso));
    }
    const oracle = computeBoards(batches.flat(), DATE, new Map(), board);
    expect(views[0]).toEqual(oracle);
    expect(views[1]).toEqual(views[0]);
    expect(oracle.boards.momentum.length).toBeGreaterThan(5);
  }, 120_000);

  it('stop on SIGTERM by finishing and acking what they hold, with exit status 0', async () => {
    const batches = market(13, 40_000);
    const iso = await createIsolation();
    isolations.push(iso);
    await publishAll(iso, batches);
    const lba = spawnLba(iso);
    await expect
      .poll(() => appliedBatches(iso), { timeout: 60_000, interval: 20 })
      .toBeGreaterThan(0);
    const exited = new Promise<number | null>((resolve) =>
      lba.once('exit', (code) => resolve(code)),
    );
    lba.kill('SIGTERM');
    expect(await exited).toBe(0);
    const applied = await appliedBatches(iso);
    // Whatever it did not apply is still queued, none of it unacked, none of it applied twice.
    await expect
      .poll(
        async () => {
          const queue = await analyzersQueue(iso);
          return [queue.messages_unacknowledged, (queue.messages_ready ?? 0) + applied];
        },
        { timeout: 15_000, interval: 500 },
      )
      .toEqual([0, batches.length]);
  }, 120_000);

  it('serve /metrics on a metrics-only port registered for Prometheus, unregistered at exit', async () => {
    const batches = market(17, 5_000);
    const iso = await createIsolation();
    isolations.push(iso);
    const targets = mkdtempSync(join(tmpdir(), 'openbell-targets-'));
    try {
      await publishAll(iso, batches);
      const lba = spawnLba(iso, ['--metrics-port', '0', '--prometheus-targets', targets]);
      await expect
        .poll(() => readdirSync(targets).filter((f) => f.endsWith('.json')), { timeout: 30_000 })
        .toHaveLength(1);
      const file = join(
        targets,
        readdirSync(targets).find((f) => f.endsWith('.json'))!,
      );
      const [target] = JSON.parse(readFileSync(file, 'utf8')) as {
        targets: string[];
        labels: Record<string, string>;
      }[];
      expect(target!.labels['service']).toBe('lba');
      const scrape = async (): Promise<string> =>
        (await fetch(`http://${target!.targets[0]}/metrics`)).text();
      await expect
        .poll(async () => seriesValue(await scrape(), 'openbell_batches_acked_total'), {
          timeout: 60_000,
          interval: 200,
        })
        .toBe(batches.length);
      const text = await scrape();
      expect(seriesValue(text, 'openbell_batches_consumed_total')).toBe(batches.length);
      expect(seriesValue(text, 'openbell_consumer_connected')).toBe(1);
      expect(text).toMatch(/^target_info\{[^}]*service_name="openbell-lba"/m);
      const exited = new Promise((resolve) => lba.once('exit', resolve));
      lba.kill('SIGTERM');
      await exited;
      expect(existsSync(file)).toBe(false);
    } finally {
      rmSync(targets, { recursive: true, force: true });
    }
  }, 120_000);

  it('lose nothing when one is SIGKILLed mid-stream: unacked batches are redelivered and applied once', async () => {
    const batches = market(11, 60_000);
    const iso = await createIsolation();
    isolations.push(iso);
    await publishAll(iso, batches);
    // The victim works alone until it is mid-stream, holding prefetched, unacked batches.
    const victim = spawnLba(iso);
    await expect
      .poll(() => appliedBatches(iso), { timeout: 60_000, interval: 20 })
      .toBeGreaterThan(batches.length / 10);
    spawnLba(iso);
    victim.kill('SIGKILL');
    expect(await appliedBatches(iso)).toBeLessThan(batches.length);
    await expect
      .poll(() => appliedBatches(iso), { timeout: 60_000, interval: 200 })
      .toBe(batches.length);
    expect(await boardsOf(iso)).toEqual(computeBoards(batches.flat(), DATE, new Map(), board));
    // The management API refreshes its message stats every few seconds.
    const redelivered = async (): Promise<number> =>
      (await analyzersQueue(iso)).message_stats?.redeliver ?? 0;
    await expect.poll(redelivered, { timeout: 15_000, interval: 500 }).toBeGreaterThan(0);
  }, 120_000);
});
