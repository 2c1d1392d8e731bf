import { pino } from 'pino';
import { WebSocket } from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  parseBoardOptions,
  parseFeedLimits,
  parseTransportOptions,
  startTelemetry,
  type DependencyHealth,
  type Telemetry,
} from '../../core/index.ts';
import { createMassiveServer, type MassiveServer } from '../../replay/massive-server.ts';
import { useIsolation, type Isolation } from '../../testing/harness.ts';
import { seriesValue } from '../../testing/mdp.ts';
import { proxyServiceUrl } from '../../testing/tcp-proxy.ts';
import { createMdp, type Mdp, type MdpMassiveTuning, type MdpOptions } from './app.ts';

const OPEN = Date.parse('2026-11-24T14:30:00Z');

interface Health {
  status: string;
  dependencies: Record<string, DependencyHealth>;
}

describe('mdp health', () => {
  const iso = useIsolation();
  let telemetry: Telemetry;
  const cleanups: (() => Promise<unknown> | void)[] = [];
  beforeAll(() => {
    telemetry = startTelemetry({ service: 'openbell-mdp', instanceId: 'mdp-health-test' });
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  afterAll(async () => {
    await telemetry.shutdown();
  });

  const start = async (
    server: MassiveServer,
    overrides: Omit<Partial<MdpOptions>, 'massive'> & { massive?: MdpMassiveTuning } = {},
    connection: Partial<Pick<Isolation, 'redisUrl' | 'amqpUrl'>> = {},
  ): Promise<Mdp> => {
    const { amqpUrl, redisUrl, namespace } = iso();
    const mdp = createMdp({
      connection: { amqpUrl, redisUrl, namespace, ...connection },
      transport: parseTransportOptions({ batchMaxDelayMs: 5, queueTtlMs: 60_000 }),
      board: parseBoardOptions({ publishIntervalMs: 50 }),
      analyzer: true,
      group: 'analyzers',
      http: { host: '127.0.0.1', port: 0 },
      prevCloses: { kind: 'none' },
      feed: { insecure: true, limits: parseFeedLimits({}), allowedOrigins: [] },
      log: pino({ level: 'silent' }),
      metrics: telemetry.metricsHandler,
      ...overrides,
      massive: {
        url: server.url,
        apiKey: 'test-key',
        topics: ['A.*', 'T.*'],
        ...overrides.massive,
      },
    });
    cleanups.push(() => mdp.close());
    await mdp.start();
    return mdp;
  };
  const massiveServer = async (): Promise<MassiveServer> => {
    const server = await createMassiveServer({ apiKey: 'test-key' });
    cleanups.push(() => server.close());
    return server;
  };
  const get = (port: number, path: string) => fetch(`http://127.0.0.1:${port}${path}`);
  const readyz = async (port: number) => (await get(port, '/readyz')).status;
  const health = async (port: number) => (await (await get(port, '/health')).json()) as Health;
  const bar = (n: number) => ({
    ev: 'A',
    sym: 'AAPL',
    s: OPEN + n * 1000,
    e: OPEN + n * 1000 + 1000,
    av: n + 1,
    c: 10,
  });

  it('answers /readyz 503 while Massive is stalled or in backoff, and 200 once it streams again', async () => {
    const server = await massiveServer();
    // Every reconnect waits ~1.5 s: long enough to read the backoff from the outside.
    const mdp = await start(server, {
      massive: {
        stallTimeoutMs: 300,
        sessionOpen: () => true,
        backoffInitialMs: 1500,
        backoffMaxMs: 1500,
        random: () => 0.99,
      },
    });
    await server.waitForSubscribers(1);
    server.send([bar(0)]);
    await expect.poll(() => readyz(mdp.port), { timeout: 10_000 }).toBe(200);
    expect((await health(mdp.port)).status).toBe('ok');

    // Silence: the stall is detected, the connection dropped, and the mdp waits in backoff.
    await expect.poll(() => readyz(mdp.port), { timeout: 5000, interval: 50 }).toBe(503);
    const stalled = await get(mdp.port, '/health');
    expect(stalled.status).toBe(503);
    const body = (await stalled.json()) as Health;
    expect(body.status).toBe('degraded');
    expect(body.dependencies['massive']).toMatchObject({
      ok: false,
      state: 'backoff',
      detail: 'closed 1006 (stalled)',
    });
    expect(body.dependencies['rabbitmq']).toMatchObject({ ok: true, state: 'connected' });
    expect(body.dependencies['redis']).toMatchObject({ ok: true, state: 'ready' });
    expect(body.dependencies['applies']).toMatchObject({ ok: true });
    expect(await (await get(mdp.port, '/readyz')).text()).toBe(
      'not ready: massive backoff (closed 1006 (stalled))\n',
    );
    const metrics = await (await get(mdp.port, '/metrics')).text();
    expect(seriesValue(metrics, 'openbell_massive_stalls_total')).toBeGreaterThanOrEqual(1);
    expect(seriesValue(metrics, 'openbell_ready')).toBe(0);
    expect(seriesValue(metrics, 'openbell_dependency_up{dependency="massive"}')).toBe(0);
    expect(seriesValue(metrics, 'openbell_dependency_up{dependency="redis"}')).toBe(1);

    // Data again: the next connection streams and stays.
    let n = 1;
    const feeding = setInterval(() => server.send([bar(n++)]), 50);
    cleanups.push(() => clearInterval(feeding));
    await expect.poll(() => readyz(mdp.port), { timeout: 10_000 }).toBe(200);
    expect((await health(mdp.port)).dependencies['massive']).toMatchObject({
      ok: true,
      state: 'streaming',
    });

    // A drop: backoff again, not ready until the reconnect.
    server.dropConnections();
    await expect.poll(() => readyz(mdp.port), { timeout: 5000, interval: 50 }).toBe(503);
    expect((await health(mdp.port)).dependencies['massive']).toMatchObject({
      state: 'backoff',
      detail: 'closed 1006',
    });
    await expect.poll(() => readyz(mdp.port), { timeout: 10_000 }).toBe(200);
    expect(seriesValue(await (await get(mdp.port, '/metrics')).text(), 'openbell_ready')).toBe(1);
  });

  it('answers /readyz 503 while Redis or RabbitMQ is unreachable, naming it, and 200 after', async () => {
    const server = await massiveServer();
    const redis = await proxyServiceUrl(iso().redisUrl);
    const amqp = await proxyServiceUrl(iso().amqpUrl);
    cleanups.push(
      () => redis.proxy.close(),
      () => amqp.proxy.close(),
    );
    const mdp = await start(server, {}, { redisUrl: redis.url, amqpUrl: amqp.url });
    await server.waitForSubscribers(1);
    await expect.poll(() => readyz(mdp.port), { timeout: 10_000 }).toBe(200);

    redis.proxy.down();
    await expect.poll(() => readyz(mdp.port), { timeout: 5000, interval: 50 }).toBe(503);
    const down = await health(mdp.port);
    expect(down.dependencies['redis']?.ok).toBe(false);
    expect(down.dependencies['rabbitmq']?.ok).toBe(true);
    expect(down.dependencies['massive']?.ok).toBe(true);
    redis.proxy.up();
    await expect.poll(() => readyz(mdp.port), { timeout: 15_000 }).toBe(200);

    amqp.proxy.down();
    await expect.poll(() => readyz(mdp.port), { timeout: 5000, interval: 50 }).toBe(503);
    expect((await health(mdp.port)).dependencies['rabbitmq']).toMatchObject({
      ok: false,
      state: 'disconnected',
    });
    amqp.proxy.up();
    await expect.poll(() => readyz(mdp.port), { timeout: 15_000 }).toBe(200);
  });

  it('answers /readyz 503 while cooling down after max_connections, and 200 after', async () => {
    const server = await massiveServer();
    const mdp = await start(server, { massive: { maxConnectionsCooldownMs: 1500 } });
    await server.waitForSubscribers(1);
    await expect.poll(() => readyz(mdp.port), { timeout: 10_000 }).toBe(200);
    // Another connection with the same key takes the account over (Massive's one-connection rule).
    const rival = new WebSocket(server.url);
    rival.on('open', () => rival.send(JSON.stringify({ action: 'auth', params: 'test-key' })));
    await expect.poll(() => readyz(mdp.port), { timeout: 5000, interval: 50 }).toBe(503);
    expect((await health(mdp.port)).dependencies['massive']).toMatchObject({
      ok: false,
      state: 'cooldown',
      detail: 'closed 1000 after max_connections',
    });
    rival.close();
    await expect.poll(() => readyz(mdp.port), { timeout: 10_000 }).toBe(200);
  });

  it('answers /readyz 503 once Massive refused the API key for good', async () => {
    const server = await createMassiveServer({ apiKey: 'right-key' });
    cleanups.push(() => server.close());
    const mdp = await start(server, { analyzer: false, feed: undefined });
    await expect
      .poll(async () => (await health(mdp.port)).dependencies['massive']?.state, {
        timeout: 10_000,
      })
      .toBe('failed');
    expect(await readyz(mdp.port)).toBe(503);
    const body = await health(mdp.port);
    expect(body.dependencies['massive']?.detail).toMatch(/authentication failed/);
    // Without the analyzer and the feed, the mdp does not depend on Redis.
    expect(Object.keys(body.dependencies).sort()).toEqual(['massive', 'rabbitmq']);
  });

  it('serves the health endpoints and /metrics on the admin port, and only the page and /ws on the trader port', async () => {
    const server = await massiveServer();
    const mdp = await start(server, { admin: { host: '127.0.0.1', port: 0 } });
    await server.waitForSubscribers(1);
    const admin = (mdp.adminServer!.address() as { port: number }).port;
    expect(admin).not.toBe(mdp.port);
    for (const path of ['/health', '/healthz', '/readyz', '/metrics'])
      expect((await get(mdp.port, path)).status, path).toBe(404);
    expect((await get(mdp.port, '/')).status).toBe(200);
    expect(await (await get(admin, '/healthz')).text()).toBe('ok\n');
    await expect.poll(() => readyz(admin), { timeout: 10_000 }).toBe(200);
    expect((await health(admin)).status).toBe('ok');
    expect(await (await get(admin, '/metrics')).text()).toMatch(/^openbell_ready 1/m);
    expect((await get(admin, '/')).status).toBe(404);
  });
});
