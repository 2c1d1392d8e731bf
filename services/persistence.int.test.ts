import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { usePrivateServices } from '../testing/private-services.ts';
import { REDIS_PERSISTENCE, SERVICES, type ServiceDefinition } from './definitions.ts';
import { ensureServices, stateDir } from './ensure.ts';
import type { PrivateService } from './private.ts';
import { writeState } from './state.ts';
import { statusOfServices } from './status.ts';

const REDIS = SERVICES.find((service) => service.name === 'redis')!;

describe("the services' Redis persistence", () => {
  const services = usePrivateServices();
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  const tempDir = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'openbell-persistence-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    return dir;
  };
  const capture = () => {
    const lines: string[] = [];
    return {
      lines,
      log: pino({ level: 'info' }, { write: (line: string) => void lines.push(line) }),
    };
  };
  const config = async (service: PrivateService) => {
    const redis = new Redis(service.url);
    try {
      const [, appendonly] = (await redis.config('GET', 'appendonly')) as string[];
      const [, appendfsync] = (await redis.config('GET', 'appendfsync')) as string[];
      const pid = Number(/^process_id:(\d+)/m.exec(await redis.info('server'))?.[1]);
      return { appendonly, appendfsync, pid };
    } finally {
      redis.disconnect();
    }
  };
  /** The Redis definition pointed at a private instance, as if it were the default one. */
  const at = (service: PrivateService): ServiceDefinition => ({
    ...REDIS,
    defaultUrl: service.url,
  });

  it('starts Redis with an append-only file fsynced always', () => {
    const dir = tempDir();
    const args = REDIS.plan('redis-server', dir, process.cwd()).args;
    const value = (flag: string) => args[args.indexOf(flag) + 1];
    expect(value('--appendonly')).toBe('yes');
    expect(value('--appendfsync')).toBe('always');
    expect(REDIS_PERSISTENCE).toEqual({ appendonly: 'yes', appendfsync: 'always' });
  });

  it('switches the append-only file on at runtime in a Redis openbell started without one', async () => {
    const service = await services.redis({ appendOnly: false });
    const projectDir = tempDir();
    const { pid } = await config(service);
    writeState(stateDir(projectDir), {
      processes: {
        redis: { pid, url: service.url, marker: 'redis-server', startedAt: 'earlier' },
      },
    });
    const { lines, log } = capture();
    const { endpoints } = await ensureServices({
      projectDir,
      env: {},
      log,
      definitions: [at(service)],
      install: false,
      docker: false,
    });
    expect(endpoints).toEqual([expect.objectContaining({ source: 'started', url: service.url })]);
    expect(await config(service)).toMatchObject({ appendonly: 'yes', appendfsync: 'always' });
    expect(lines.join('')).toContain('switched on at runtime');
    // The file is written (Redis 7 keeps it in appendonlydir).
    expect(existsSync(join(service.dir, 'appendonlydir'))).toBe(true);
    expect(readdirSync(join(service.dir, 'appendonlydir')).length).toBeGreaterThan(0);
    // Nothing more to do the next time.
    const again = capture();
    await ensureServices({
      projectDir,
      env: {},
      log: again.log,
      definitions: [at(service)],
      install: false,
      docker: false,
    });
    expect(again.lines.join('')).not.toContain('append-only');
  });

  it('never reconfigures a Redis it did not start, and says it has no append-only file', async () => {
    const service = await services.redis({ appendOnly: false });
    const { lines, log } = capture();
    const { endpoints } = await ensureServices({
      projectDir: tempDir(),
      env: { REDIS_URL: service.url },
      log,
      definitions: [REDIS],
      install: false,
      docker: false,
    });
    expect(endpoints).toEqual([expect.objectContaining({ source: 'env' })]);
    expect(await config(service)).toMatchObject({ appendonly: 'no' });
    expect(lines.join('')).toContain('Redis has no append-only file: a restart empties the boards');

    const rows = await statusOfServices(tempDir(), { REDIS_URL: service.url });
    expect(rows.find((row) => row.name === 'redis')).toMatchObject({
      state: 'up',
      detail: expect.stringMatching(
        /^7[\d.]+; no append-only file: a restart empties the boards$/,
      ) as unknown,
    });
  });

  it('says when a Redis it did not start fsyncs its file only every second', async () => {
    const service = await services.redis({ appendOnly: true, appendFsync: 'everysec' });
    expect(await REDIS.settings!(service.url, { fix: false })).toBe(
      'append-only file fsynced everysec: a machine crash can lose the latest writes',
    );
    const fixed = await services.redis({ appendOnly: true, appendFsync: 'always' });
    expect(await REDIS.settings!(fixed.url, { fix: false })).toBeUndefined();
  });
});
