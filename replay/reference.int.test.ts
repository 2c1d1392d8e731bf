import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import {
  DEFAULTS,
  ServiceError,
  createAnalyzer,
  createBoardStore,
  createNames,
  createRecordingWriter,
  describeFrame,
  openRecording,
  parseBoardOptions,
  parseTransportOptions,
  type Names,
  type RecordingMeta,
} from '../core/index.ts';
import { createMdp } from '../servers/mdp/app.ts';
import { useIsolation } from '../testing/harness.ts';
import { usePrivateServices } from '../testing/private-services.ts';
import { loadRecordingReference, referenceForRecording } from './reference.ts';
import { serveReplay } from './serve.ts';

const BIN = fileURLToPath(new URL('../bin/openbell.mjs', import.meta.url));
const DATE = '2026-11-24';
const OPEN = Date.parse('2026-11-24T14:30:00Z');
const META: RecordingMeta = { date: DATE, prevClose: { AAPL: 100, MSFT: 200, TSLA: 300 } };
const log = pino({ level: 'silent' });

describe("a recording's previous closes", () => {
  const iso = useIsolation();
  const services = usePrivateServices();
  const dir = mkdtempSync(join(tmpdir(), 'openbell-reference-'));
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  let files = 0;
  /** Writes a recording of three one-second bars of AAPL, MSFT and TSLA (NVDA has no close). */
  const record = async (meta: RecordingMeta): Promise<string> => {
    const path = join(dir, `r${files++}.obrec`);
    const writer = await createRecordingWriter(path, meta, { source: 'test' });
    for (let n = 0; n < 3; n++) {
      const at = OPEN + n * 1000;
      const bars = ['AAPL', 'MSFT', 'TSLA', 'NVDA'].map((sym, k) => ({
        ev: 'A',
        sym,
        s: at,
        e: at + 1000,
        av: 100 * (n + 1),
        c: (k + 1) * 100 * (1 + (n + 1) / 100),
      }));
      const data = Buffer.from(JSON.stringify(bars));
      writer.write({ timeUs: at * 1000, data, ...describeFrame(data) });
    }
    await writer.close();
    return path;
  };
  const open = async (path: string) => {
    const recording = await openRecording(path);
    cleanups.push(() => recording.close());
    return recording;
  };
  const gappers = async (redis: Redis, names: Names) =>
    (
      await createBoardStore({ redis, names, board: parseBoardOptions() }).readBoards(DATE)
    ).boards.gappers.map((row) => row.sym);

  it('are loaded before --to-broker replays, and rank the gappers with a running analyzer', async () => {
    const { amqpUrl, redisUrl, names, redis } = iso();
    const analyzerRedis = new Redis(redisUrl);
    cleanups.push(() => analyzerRedis.disconnect());
    const topology = { queueTtlMs: 60_000, queueMaxLength: DEFAULTS.transport.queueMaxLength };
    const analyzer = createAnalyzer({
      amqpUrl,
      redis: analyzerRedis,
      names,
      log,
      topology,
      board: DEFAULTS.board,
    });
    await analyzer.start();
    cleanups.push(() => analyzer.close());
    const summary = await serveReplay({
      recording: await open(await record(META)),
      log,
      speed: 'max',
      broker: {
        amqpUrl,
        names,
        group: 'analyzers',
        transport: parseTransportOptions({ ...topology, batchMaxDelayMs: 5 }),
        workers: 0,
      },
      reference: { redisUrl, names },
    });
    expect(summary.prevCloses).toEqual({ date: DATE, loaded: 3, stateLosses: 0 });
    expect(await redis.hgetall(names.prevClose(DATE))).toEqual({
      AAPL: '100',
      MSFT: '200',
      TSLA: '300',
    });
    await expect
      .poll(() => gappers(redis, names), { timeout: 10_000 })
      .toEqual(['AAPL', 'MSFT', 'TSLA']);
    expect(await redis.sismember(names.noPrevClose(DATE), 'NVDA')).toBe(1);
  });

  it('are loaded before the WebSocket replay, and rank the gappers of the mdp it feeds', async () => {
    const { amqpUrl, redisUrl, names, namespace, redis } = iso();
    const closeMdp: (() => Promise<void>)[] = [];
    const summary = await serveReplay({
      recording: await open(await record(META)),
      log,
      speed: '10',
      server: {
        host: '127.0.0.1',
        port: 0,
        apiKey: 'replay-key',
        waitClients: 1,
        slowConsumerBytes: 1 << 20,
        onListening: (server) => {
          const mdp = createMdp({
            massive: { url: server.url, apiKey: 'replay-key', topics: ['A.*'] },
            connection: { amqpUrl, redisUrl, namespace },
            transport: parseTransportOptions({ batchMaxDelayMs: 5, queueTtlMs: 60_000 }),
            board: parseBoardOptions({ publishIntervalMs: 50 }),
            analyzer: true,
            group: 'analyzers',
            http: { host: '127.0.0.1', port: 0 },
            prevCloses: { kind: 'none' },
            log,
          });
          closeMdp.push(() => mdp.close());
          void mdp.start();
        },
      },
      reference: { redisUrl, names },
    });
    cleanups.push(() => Promise.all(closeMdp.map((close) => close())));
    expect(summary.prevCloses).toMatchObject({ loaded: 3 });
    await expect
      .poll(() => gappers(redis, names), { timeout: 10_000 })
      .toEqual(['AAPL', 'MSFT', 'TSLA']);
  });

  it('are stored again when Redis loses its state while the replay runs', async () => {
    const service = await services.redis({ appendOnly: false });
    const names = createNames({ namespace: 'reference' });
    const reference = await loadRecordingReference({
      recording: await open(await record(META)),
      redisUrl: service.url,
      names,
      log,
      stateGuard: { intervalMs: 100 },
    });
    cleanups.push(() => reference.close());
    const redis = new Redis(service.url, { maxRetriesPerRequest: 1 });
    redis.on('error', () => undefined);
    cleanups.push(() => redis.disconnect());
    expect(await redis.hlen(names.prevClose(DATE))).toBe(3);
    await service.stop();
    await service.start();
    await expect.poll(() => reference.guard?.stats.restores, { timeout: 15_000 }).toBe(1);
    expect(reference.guard?.stats.losses).toEqual({ emptied: 1, rolled_back: 0 });
    expect(await redis.hgetall(names.prevClose(DATE))).toEqual({
      AAPL: '100',
      MSFT: '200',
      TSLA: '300',
    });
  });

  it('need no Redis when the recording has none, and name the flag when Redis does not answer', async () => {
    const closed = 'redis://127.0.0.1:1';
    const lines: string[] = [];
    const capture = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const none = await loadRecordingReference({
      recording: await open(await record({ date: DATE })),
      redisUrl: closed,
      names: iso().names,
      log: capture,
    });
    expect(none).toMatchObject({ loaded: 0, date: undefined, guard: undefined });
    expect(lines.join('')).toContain('the recording has no previous closes');
    const refused = loadRecordingReference({
      recording: await open(await record(META)),
      redisUrl: 'redis://:secret@127.0.0.1:1',
      names: iso().names,
      log,
    });
    await expect(refused).rejects.toBeInstanceOf(ServiceError);
    await expect(refused).rejects.toThrow(
      /needs Redis at redis:\/\/:\*\*\*@127\.0\.0\.1:1 \(--redis-url, REDIS_URL\): .+; --no-prev-close replays without them/,
    );
  });

  it('are loaded by `openbell replay --to-broker`, which documents it, or skipped with --no-prev-close', async () => {
    const { amqpUrl, redisUrl, namespace, names, redis } = iso();
    const file = await record(META);
    const run = (...flags: string[]) => {
      const result = spawnSync(
        process.execPath,
        [BIN, 'replay', file, '--to-broker', '--speed', 'max', ...flags],
        {
          encoding: 'utf8',
          timeout: 60_000,
          env: {
            ...process.env,
            REDIS_URL: redisUrl,
            AMQP_URL: amqpUrl,
            OPENBELL_NAMESPACE: namespace,
            LOG_LEVEL: 'warn',
          },
        },
      );
      expect(result.status, result.stderr).toBe(0);
      return JSON.parse(result.stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;
    };
    expect(run('--no-prev-close')).not.toHaveProperty('prevCloses');
    expect(await redis.exists(names.prevClose(DATE))).toBe(0);
    expect(run()).toMatchObject({ prevCloses: { date: DATE, loaded: 3, stateLosses: 0 } });
    expect(await redis.hlen(names.prevClose(DATE))).toBe(3);
    const help = spawnSync(process.execPath, [BIN, 'replay', '--help'], { encoding: 'utf8' });
    expect(help.stdout).toContain('--no-prev-close');
    expect(help.stdout.replace(/\s+/g, ' ')).toContain(
      "the recording's (its header's meta.prevClose, for meta.date) are stored in the Redis at --redis-url (REDIS_URL)",
    );
  });

  it('come into a recording header from a file, else the Redis the mdp loaded, else the REST API', async () => {
    const { redis, redisUrl, names } = iso();
    const lines: string[] = [];
    const capture = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const requests: { url: string; authorization: string | undefined }[] = [];
    const rest = createServer((request, response) => {
      requests.push({ url: request.url ?? '', authorization: request.headers.authorization });
      response.setHeader('content-type', 'application/json');
      response.end(
        readFileSync(
          new URL('../fixtures/massive/rest/grouped-daily-2005-04-04.json', import.meta.url),
        ),
      );
    });
    await new Promise<void>((resolve) => rest.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => rest.close(resolve)));
    const restUrl = `http://127.0.0.1:${(rest.address() as AddressInfo).port}`;
    const file = join(dir, 'closes.json');
    writeFileSync(file, JSON.stringify({ IBM: 150.5 }));
    const source = { date: DATE, redisUrl, names, apiKey: 'rest-key', restUrl, log: capture };

    await createBoardStore({ redis, names, board: DEFAULTS.board }).setPrevCloses(
      DATE,
      new Map([['AAPL', 100]]),
    );
    expect(await referenceForRecording({ ...source, file })).toEqual({
      date: DATE,
      prevClose: { IBM: 150.5 },
    });
    expect(await referenceForRecording(source)).toEqual({ date: DATE, prevClose: { AAPL: 100 } });
    expect(requests).toEqual([]);

    await redis.del(names.prevClose(DATE));
    expect(await referenceForRecording(source)).toEqual({ date: DATE, prevClose: { GIK: 10.02 } });
    // The grouped daily bars of the trading day before, the key in a header only.
    expect(requests).toEqual([
      {
        url: '/v2/aggs/grouped/locale/us/market/stocks/2026-11-23?adjusted=true',
        authorization: 'Bearer rest-key',
      },
    ]);

    expect(
      await referenceForRecording({
        ...source,
        redisUrl: 'redis://127.0.0.1:1',
        apiKey: undefined,
      }),
    ).toEqual({ date: DATE });
    expect(lines.join('')).toContain('no previous closes for the recording header');
    expect(lines.join('')).not.toContain('rest-key');
  });

  it('are kept in the header by `openbell record` from the Redis the mdp loaded them into', async () => {
    const { redis, redisUrl, amqpUrl, namespace, names } = iso();
    await createBoardStore({ redis, names, board: DEFAULTS.board }).setPrevCloses(
      DATE,
      new Map([
        ['AAPL', 100],
        ['MSFT', 200],
      ]),
    );
    const output = join(dir, 'tap.obrec');
    const result = spawnSync(
      process.execPath,
      [BIN, 'record', '--tap', '-o', output, '--duration', '1', '--date', DATE],
      {
        encoding: 'utf8',
        timeout: 60_000,
        env: {
          ...process.env,
          REDIS_URL: redisUrl,
          AMQP_URL: amqpUrl,
          OPENBELL_NAMESPACE: namespace,
          MASSIVE_API_KEY: '',
          LOG_LEVEL: 'warn',
        },
      },
    );
    expect(result.status, result.stderr).toBe(0);
    const recording = await open(output);
    expect(recording.meta).toEqual({ date: DATE, prevClose: { AAPL: 100, MSFT: 200 } });
    const help = spawnSync(process.execPath, [BIN, 'record', '--help'], { encoding: 'utf8' });
    for (const flag of ['--date', '--prev-close-file', '--no-prev-close', '--massive-rest-url'])
      expect(help.stdout).toContain(flag);
    expect(help.stdout.replace(/\s+/g, ' ')).toContain(
      'Previous closes: the header keeps those of the recorded date (--date), for replays to load',
    );
  });
});
