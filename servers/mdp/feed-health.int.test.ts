import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { DependencyHealth } from '../../core/index.ts';
import { useIsolation } from '../../testing/harness.ts';
import { createTcpProxy } from '../../testing/tcp-proxy.ts';

const BIN = fileURLToPath(new URL('../../bin/openbell.mjs', import.meta.url));

describe('openbell feed health', () => {
  const iso = useIsolation();
  const cleanups: (() => Promise<unknown> | void)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('answers /readyz 503 on its admin port while Redis is unreachable, 200 after; the trader port has the page only', async () => {
    const target = new URL(iso().redisUrl);
    const proxy = await createTcpProxy(target.hostname, Number(target.port || 6379));
    cleanups.push(() => proxy.close());
    target.hostname = '127.0.0.1';
    target.port = String(proxy.port);
    const child = spawn(
      process.execPath,
      [BIN, 'feed', '--port', '0', '--admin-port', '0', '--feed-insecure'],
      {
        env: {
          ...process.env,
          REDIS_URL: target.toString(),
          OPENBELL_NAMESPACE: iso().namespace,
          LOG_LEVEL: 'info',
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    cleanups.push(() => {
      child.kill('SIGKILL');
    });
    const ports: Record<string, number> = {};
    child.stdout.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) {
        const match = /"msg":"(feed|admin) listening/.exec(line);
        if (match !== null) ports[match[1]!] = (JSON.parse(line) as { port: number }).port;
      }
    });
    await vi.waitFor(() => expect(Object.keys(ports).sort()).toEqual(['admin', 'feed']), {
      timeout: 20_000,
      interval: 50,
    });
    const admin = `http://127.0.0.1:${ports['admin']}`;
    const trader = `http://127.0.0.1:${ports['feed']}`;
    const readyz = async () => (await fetch(`${admin}/readyz`)).status;
    const health = async () =>
      (await (await fetch(`${admin}/health`)).json()) as {
        status: string;
        dependencies: Record<string, DependencyHealth>;
      };

    for (const path of ['/health', '/readyz', '/metrics'])
      expect((await fetch(`${trader}${path}`)).status, path).toBe(404);
    expect((await fetch(`${trader}/`)).status).toBe(200);
    await expect.poll(readyz, { timeout: 10_000 }).toBe(200);
    expect(await health()).toMatchObject({
      status: 'ok',
      dependencies: { redis: { ok: true, state: 'ready' } },
    });
    expect(await (await fetch(`${admin}/metrics`)).text()).toMatch(
      /^openbell_dependency_up\{dependency="redis"\} 1/m,
    );

    proxy.down();
    await expect.poll(readyz, { timeout: 5000, interval: 50 }).toBe(503);
    expect(await health()).toMatchObject({
      status: 'degraded',
      dependencies: { redis: { ok: false } },
    });
    proxy.up();
    await expect.poll(readyz, { timeout: 15_000 }).toBe(200);
  });
});
