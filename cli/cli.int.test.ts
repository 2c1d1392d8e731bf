import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it, vi } from 'vitest';
import { DEFAULTS, createBoardStore, verifyFeedToken } from '../core/index.ts';
import { createIsolation } from '../testing/harness.ts';

const { version } = JSON.parse(
  readFileSync(new URL('../package.json', import.meta.url), 'utf8'),
) as { version: string };
const BIN = fileURLToPath(new URL('../bin/openbell.mjs', import.meta.url));
const SYSTEM_NODE = ['/usr/bin/node', '/usr/local/bin/node'].find(
  (node) =>
    existsSync(node) &&
    Number(spawnSync(node, ['-p', 'process.versions.node.split(".")[0]']).stdout.toString()) < 24,
);

function openbell(args: string[], node = process.execPath, env: Record<string, string> = {}) {
  const result = spawnSync(node, [BIN, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, ...env },
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('openbell CLI', () => {
  it('lists only the commands that work, with help for each', () => {
    const { code, stdout } = openbell(['--help']);
    expect(code).toBe(0);
    const commands = [...stdout.split('Commands:')[1]!.matchAll(/^ {2}(\S+)/gm)].map((m) => m[1]);
    expect(commands).toEqual([
      'mdp',
      'feed',
      'lba',
      'boards',
      'token',
      'synth',
      'record',
      'replay',
      'lab',
      'check',
      'swarm',
      'exporter',
      'services',
      'help',
    ]);
    const lab = openbell(['lab', '--help']).stdout;
    for (const flag of ['--compare <topology>', '--poc-delay-ms <ms>', '--check', '--prometheus'])
      expect(lab).toContain(flag);
    const up = openbell(['services', 'up', '--help']);
    expect(up.stdout).toContain('--only <names>');
    expect(up.stdout.replace(/\s+/g, ' ')).toContain('(env: OPENBELL_SERVICES)');
    expect(up.stdout).toContain('REDIS_URL');
  });

  it('reports every service up, as JSON, without starting anything', () => {
    const { code, stdout } = openbell(['services', 'status', '--json']);
    expect(code).toBe(0);
    const rows = JSON.parse(stdout) as { name: string; state: string }[];
    expect(rows.map((r) => [r.name, r.state])).toEqual([
      ['redis', 'up'],
      ['rabbitmq', 'up'],
      ['prometheus', 'up'],
    ]);
  });

  it('is what `npm run services` runs, as the README says', () => {
    const result = spawnSync('npm', ['run', '-s', 'services', '--', 'status', '--json'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(result.status).toBe(0);
    expect((JSON.parse(result.stdout) as unknown[]).length).toBe(3);
  });

  it('prints the boards as JSON in the documented shape', async () => {
    const iso = await createIsolation();
    try {
      const store = createBoardStore({ redis: iso.redis, names: iso.names, board: DEFAULTS.board });
      const open = Date.parse('2026-11-24T14:30:00Z');
      await store.setPrevCloses('2026-11-24', new Map([['AAPL', 100]]));
      await store.applyBatch({
        v: 1,
        id: 'cli-1',
        receivedAtMs: open,
        events: [
          { ev: 'A', sym: 'AAPL', s: open, e: open + 1000, av: 500, c: 110, op: 105 },
          { ev: 'T', sym: 'AAPL', t: open + 10, p: 110, s: 5 },
        ],
      });
      const env = { REDIS_URL: iso.redisUrl, OPENBELL_NAMESPACE: iso.namespace };
      const { code, stdout } = openbell(['boards', '--json', '--top', '5'], process.execPath, env);
      expect(code).toBe(0);
      const row = { sym: 'AAPL', price: 110, volume: 500 };
      expect(JSON.parse(stdout)).toEqual({
        date: '2026-11-24',
        boards: {
          gappers: [{ ...row, score: 10 }],
          gainers: [{ ...row, score: ((110 - 105) / 105) * 100 }],
          volume: [{ ...row, score: 500 }],
          trades: [{ ...row, score: 1 }],
          momentum: [],
        },
      });
      const text = openbell(['boards', '--date', '2026-11-24'], process.execPath, env);
      expect(text.stdout).toContain('gappers:');
      expect(openbell(['boards', '--date', '24/11/2026'], process.execPath, env).code).not.toBe(0);
    } finally {
      await iso.cleanup();
    }
  });

  it('mints feed tokens that the feed verifies, and the mdp refuses to serve without a secret', async () => {
    const secret = 'cli-test-secret-0123456789abcdef-xyz';
    const minted = openbell(
      ['token', '--sub', 'ann', '--ttl', '2h', '--channels', 'board:*'],
      process.execPath,
      {
        FEED_JWT_SECRET: secret,
      },
    );
    expect(minted.code).toBe(0);
    const claims = await verifyFeedToken(secret, minted.stdout.trim());
    expect(claims).toMatchObject({ sub: 'ann', channels: ['board:*'] });
    expect((claims as { exp: number }).exp - Date.now() / 1000).toBeGreaterThan(7100);
    // No longer than the feed accepts (a day), unless told the feed accepts more.
    const century = openbell(['token', '--sub', 'ann', '--ttl', '36500d'], process.execPath, {
      FEED_JWT_SECRET: secret,
    });
    expect(century.code).toBe(1);
    expect(century.stderr).toContain("--ttl 36500d is over the feed's token lifetime limit (1d");
    const week = openbell(['token', '--sub', 'ann', '--ttl', '7d'], process.execPath, {
      FEED_JWT_SECRET: secret,
      FEED_MAX_TOKEN_TTL: '7d',
    });
    expect(week.code).toBe(0);
    expect(
      await verifyFeedToken(secret, week.stdout.trim(), { maxTtlSeconds: 7 * 86_400 }),
    ).toMatchObject({ sub: 'ann' });
    const unsigned = openbell(['token', '--sub', 'ann'], process.execPath, { FEED_JWT_SECRET: '' });
    expect(unsigned.code).toBe(1);
    expect(unsigned.stderr).toContain('FEED_JWT_SECRET');
    const mdp = openbell(['mdp', '--port', '0'], process.execPath, {
      MASSIVE_API_KEY: 'k',
      FEED_JWT_SECRET: '',
    });
    expect(mdp.code).toBe(1);
    expect(mdp.stderr).toContain('feed.secret: required');
    const feeds = openbell(['feed', '--port', '0', '--processes', '2'], process.execPath, {
      FEED_JWT_SECRET: '',
      FEED_INSECURE: 'false',
    });
    expect(feeds.code).toBe(1);
    expect(feeds.stderr).toContain('feed.secret: required');
  });

  it('runs feed processes that share one port, and stops them all on SIGTERM', async () => {
    const iso = await createIsolation();
    const child = spawn(
      process.execPath,
      [
        BIN,
        'feed',
        '--port',
        '0',
        '--processes',
        '2',
        '--feed-insecure',
        '--namespace',
        iso.namespace,
      ],
      { env: { ...process.env, REDIS_URL: iso.redisUrl }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const lines: string[] = [];
    child.stdout.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n')));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      const listening = () =>
        lines
          .filter((l) => l.includes('"feed listening"'))
          .map((l) => JSON.parse(l) as { pid: number; port: number });
      await vi.waitFor(() => expect(listening()).toHaveLength(2), {
        timeout: 20_000,
        interval: 100,
      });
      const [a, b] = listening();
      expect(a!.pid).not.toBe(b!.pid);
      expect(a!.port).toBe(b!.port);
      const health = (await (await fetch(`http://127.0.0.1:${a!.port}/health`)).json()) as {
        status: string;
      };
      expect(health.status).toBe('ok');
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(lines.filter((l) => l.includes('"msg":"stopped"'))).toHaveLength(2);
    } finally {
      child.kill('SIGKILL');
      await iso.cleanup();
    }
  });

  it('rejects an unknown service name with a clear error', () => {
    const { code, stderr } = openbell(['services', 'up', '--only', 'redis,mysql']);
    expect(code).not.toBe(0);
    expect(stderr).toContain('unknown service "mysql"');
  });

  it.skipIf(SYSTEM_NODE === undefined)(
    'runs from an older system Node by switching to the pinned Node 24',
    () => {
      const { code, stdout } = openbell(['--version'], SYSTEM_NODE);
      expect(code).toBe(0);
      expect(stdout.trim()).toBe(version);
    },
  );
});
