import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { ServiceError } from '../core/index.ts';
import { basicAuth, managementUrlFor, SERVICES, type ServiceDefinition } from './definitions.ts';
import { ensureServices, stateDir, stopServices } from './ensure.ts';
import { findExecutable, isOurProcess, spawnDetached } from './processes.ts';
import { versionAtLeast } from './probe.ts';
import { readState, writeState } from './state.ts';

const log = pino({ level: 'silent' });
const dirs: string[] = [];
const tempProject = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'openbell-services-'));
  dirs.push(dir);
  return dir;
};
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe('service helpers', () => {
  it('compares dotted versions numerically', () => {
    expect(versionAtLeast('7.0.15', '7.0')).toBe(true);
    expect(versionAtLeast('3.10.8', '3.10')).toBe(true);
    expect(versionAtLeast('3.9.29', '3.10')).toBe(false);
    expect(versionAtLeast('6.2.14', '7.0')).toBe(false);
    expect(versionAtLeast('unknown', '7.0')).toBe(false);
  });

  it('derives the management URL from the AMQP URL, keeping its credentials', () => {
    expect(managementUrlFor('amqp://u:p@10.0.0.5:5672/vh', undefined)).toBe(
      'http://u:p@10.0.0.5:15672',
    );
    expect(managementUrlFor('amqp://127.0.0.1', undefined)).toBe(
      'http://guest:guest@127.0.0.1:15672',
    );
    expect(managementUrlFor('amqp://127.0.0.1', 'https://mq.example:443')).toBe(
      'https://mq.example:443',
    );
  });

  it('turns URL credentials into a Basic header', () => {
    expect(basicAuth('http://guest:guest@127.0.0.1:15672/')).toEqual({
      url: 'http://127.0.0.1:15672',
      headers: { authorization: `Basic ${Buffer.from('guest:guest').toString('base64')}` },
    });
  });

  it('finds executables on PATH or by absolute path, and nothing else', () => {
    expect(findExecutable(['sh'])).toMatch(/\/sh$/);
    expect(findExecutable(['/bin/sh'])).toBe('/bin/sh');
    expect(findExecutable(['surely-not-installed-openbell'])).toBeUndefined();
  });

  it('writes and reads the state file, and reads a missing one as empty', () => {
    const dir = tempProject();
    expect(readState(dir)).toEqual({ processes: {} });
    const state = {
      processes: { redis: { pid: 1, url: 'redis://x', marker: 'redis-server', startedAt: 'now' } },
    };
    writeState(dir, state);
    expect(readState(dir)).toEqual(state);
  });
});

describe('the Prometheus start plan', () => {
  const promtool = findExecutable(['promtool', '/usr/bin/promtool']);

  it('copies the config with its rule files, replacing stale ones', () => {
    const dir = tempProject();
    const prometheus = SERVICES.find((service) => service.name === 'prometheus')!;
    prometheus.plan('prometheus', dir, process.cwd());
    writeFileSync(join(dir, 'rules', 'removed.rules.yml'), 'groups: []\n');
    const plan = prometheus.plan('prometheus', dir, process.cwd());
    expect(plan.args).toContain(`--config.file=${join(dir, 'prometheus.yml')}`);
    expect(readdirSync(join(dir, 'rules')).sort()).toEqual([
      'alerts.rules.yml',
      'recording.rules.yml',
    ]);
    expect(existsSync(join(dir, 'targets'))).toBe(true);
    if (promtool === undefined) return;
    const check = spawnSync(promtool, ['check', 'config', join(dir, 'prometheus.yml')], {
      encoding: 'utf8',
    });
    expect(check.stdout + check.stderr).toContain('SUCCESS: 2 rule files found');
    expect(check.status).toBe(0);
  });
});

describe('ensureServices', () => {
  it('finds the running services quickly and idempotently', async () => {
    const projectDir = process.cwd();
    const first = await ensureServices({ projectDir, env: process.env, log });
    const second = await ensureServices({ projectDir, env: process.env, log });
    expect(second.endpoints).toEqual(first.endpoints);
    expect(first.endpoints.map((e) => e.name)).toEqual(['redis', 'rabbitmq', 'prometheus']);
    expect(first.urls.amqpUrl).toMatch(/^amqp:\/\//);
    expect(first.urls.rabbitmqManagementUrl).toMatch(/:15672$/);
  });

  it('uses a reachable URL from the environment and says so', async () => {
    const { urls } = await ensureServices({
      projectDir: process.cwd(),
      env: process.env,
      log,
      only: ['redis'],
    });
    const out = await ensureServices({
      projectDir: process.cwd(),
      env: { REDIS_URL: urls.redisUrl },
      log,
      only: ['redis'],
    });
    expect(out.endpoints[0]).toMatchObject({ name: 'redis', source: 'env' });
  });

  it('falls back from an unreachable env URL to the local service, with a warning', async () => {
    const warnings: string[] = [];
    const capture = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) });
    const out = await ensureServices({
      projectDir: process.cwd(),
      env: { REDIS_URL: 'redis://:pw@127.0.0.1:1' },
      log: capture,
      only: ['redis'],
    });
    expect(out.endpoints[0]!.source).not.toBe('env');
    expect(warnings.join('')).toContain('REDIS_URL does not answer');
    expect(warnings.join('')).not.toContain(':pw@');
  });

  it('stops with one message naming what to install when nothing works', async () => {
    const ghost: ServiceDefinition = {
      name: 'redis',
      label: 'Redis 7+',
      envVar: 'GHOST_URL',
      defaultUrl: 'redis://127.0.0.1:1',
      aptPackage: 'redis-server',
      probe: () => Promise.resolve({ ok: false, error: 'connection refused' }),
      findBinary: () => undefined,
      plan: () => {
        throw new Error('never started');
      },
    };
    const attempt = ensureServices({
      projectDir: tempProject(),
      env: {},
      log,
      definitions: [ghost],
      install: false,
      docker: false,
    });
    await expect(attempt).rejects.toBeInstanceOf(ServiceError);
    await expect(attempt).rejects.toThrow(
      /Redis 7\+ \(GHOST_URL\): not installed.*\n.*apt-get install redis-server/,
    );
  });
});

describe('stopServices', () => {
  it('stops the processes it recorded, by pid, and leaves others alone', async () => {
    const projectDir = tempProject();
    const dir = stateDir(projectDir);
    writeState(dir, { processes: {} });
    const ours = spawnDetached('sleep', ['300'], { logFile: join(dir, 'sleep.log') });
    const stranger = spawn('sleep', ['301'], { stdio: 'ignore' });
    try {
      writeState(dir, {
        processes: {
          redis: { pid: ours, url: 'x', marker: 'sleep', startedAt: 'now' },
          // A recorded pid whose command line no longer matches (reused pid): must not be signalled.
          prometheus: { pid: stranger.pid!, url: 'x', marker: 'prometheus', startedAt: 'now' },
        },
      });
      await stopServices(projectDir, log);
      await expect.poll(() => isOurProcess(ours, 'sleep')).toBe(false);
      expect(isOurProcess(stranger.pid!, 'sleep')).toBe(true);
      expect(readState(dir).processes).toEqual({});
    } finally {
      stranger.kill();
    }
  });
});
