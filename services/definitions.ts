import { copyFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { redactUrl } from '../core/index.ts';
import { findExecutable } from './processes.ts';
import type { ProbeResult } from './probe.ts';
import { probeAmqp, probeHttp, probeJson, probeRedis, versionAtLeast } from './probe.ts';

/** The backing services openbell runs on. */
export const SERVICE_NAMES = ['redis', 'rabbitmq', 'prometheus'] as const;

/** One of {@link SERVICE_NAMES}. */
export type ServiceName = (typeof SERVICE_NAMES)[number];

/** How to start a service from its installed binary. */
export interface StartPlan {
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Text found in the process's command line, to recognise it again before stopping it. */
  marker: string;
  /** How long it may take to answer its probe. */
  readyTimeoutMs: number;
}

/** Everything the services script knows about one service. */
export interface ServiceDefinition {
  name: ServiceName;
  /** Human name with the minimum version, for messages. */
  label: string;
  envVar: string;
  defaultUrl: string;
  aptPackage: string;
  /** Checks the service at `url` is reachable and good enough (version, plugins). */
  probe(url: string): Promise<ProbeResult>;
  /** Path of the installed server binary, or `undefined` when it is not installed. */
  findBinary(): string | undefined;
  /** Prepares `dir` (config, data folders) and returns how to start the service there. */
  plan(binary: string, dir: string, projectDir: string): StartPlan;
  /**
   * Checks a running service's settings against the ones openbell runs it with (Redis: its
   * append-only file). With `fix` (a service openbell started) it corrects them at runtime;
   * otherwise it only warns. Resolves with a note for `services status` while they differ.
   */
  settings?(url: string, options: SettingsOptions): Promise<string | undefined>;
}

/** Options of {@link ServiceDefinition.settings}. */
export interface SettingsOptions {
  /** Change the settings at runtime (only on a service openbell started). */
  fix: boolean;
  /** Where warnings and changes are logged. */
  log?: Logger;
  /** Longest wait for Redis to finish writing its first append-only file. @default 120000 */
  rewriteTimeoutMs?: number;
}

/**
 * How the Redis of the services (and of compose.yaml) persists: an append-only file, fsynced
 * before every reply (`always`), so a batch RabbitMQ considers acknowledged is on disk even if
 * the machine dies. With `everysec`, a machine or kernel crash loses up to a second of applied
 * groups the broker will not deliver again: a silent loss (a killed Redis process alone loses
 * nothing either way: its writes are in the page cache).
 *
 * Decision rule: `always` unless it costs more than 20 % of `redis.apply` (the board script in
 * groups of 16,000 events) against no file. Measured on the 2-core reference machine: the
 * pipeline bench's `redis.apply.aof-*` (`npm run bench -- --only pipeline --events 100000`, three
 * runs each, median) gave 417 k events/s without the file, 393 k with `everysec` and 374 k with
 * `always` (−10 %); the same measurement by a standalone script, 400,000 events, nine interleaved
 * runs, median: 415 k, 427 k and 389 k (−6 %). Three full runs of the pipeline bench later
 * (600,000 events, the machine shared with other work), medians without the file, `everysec`,
 * `always`: 455/465/367 k, 296/333/236 k, 323/310/268 k (−19 %, −20 %, −17 %): at the rule's edge,
 * and `always` stays. Redis fsyncs once per event-loop turn, so one script call of a whole group
 * pays one fsync.
 */
export const REDIS_PERSISTENCE = { appendonly: 'yes', appendfsync: 'always' } as const;

const REDIS: ServiceDefinition = {
  name: 'redis',
  label: 'Redis 7+',
  envVar: 'REDIS_URL',
  defaultUrl: 'redis://127.0.0.1:6379',
  aptPackage: 'redis-server',
  async probe(url) {
    const result = await probeRedis(url);
    if (result.ok && !versionAtLeast(result.version, '7.0')) {
      return {
        ok: false,
        error: `Redis ${result.version} is too old; openbell needs 7.0 or later`,
      };
    }
    return result;
  },
  findBinary: () =>
    findExecutable(['redis-server', '/usr/bin/redis-server', '/usr/local/bin/redis-server']),
  plan(binary, dir) {
    const port = new URL(REDIS.defaultUrl).port;
    return {
      command: binary,
      // The append-only file alone (no RDB snapshots on a timer): see REDIS_PERSISTENCE.
      args: [
        '--bind',
        '127.0.0.1',
        '--port',
        port,
        '--dir',
        dir,
        '--save',
        '',
        '--appendonly',
        REDIS_PERSISTENCE.appendonly,
        '--appendfsync',
        REDIS_PERSISTENCE.appendfsync,
        '--daemonize',
        'no',
      ],
      marker: 'redis-server',
      readyTimeoutMs: 10_000,
    };
  },
  settings: redisSettings,
};

/**
 * Compares a Redis's persistence with {@link REDIS_PERSISTENCE}. A Redis openbell started
 * before it kept an append-only file gets one at runtime (`CONFIG SET`, then the wait for its
 * first rewrite); one the user runs is never reconfigured, only warned about.
 */
async function redisSettings(url: string, options: SettingsOptions): Promise<string | undefined> {
  const { log } = options;
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 1500,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  redis.on('error', () => undefined);
  const shown = redactUrl(url);
  try {
    await redis.connect();
    const read = async (name: string): Promise<string> =>
      String(((await redis.config('GET', name)) as string[])[1]);
    const appendonly = await read('appendonly');
    const appendfsync = await read('appendfsync');
    const want = REDIS_PERSISTENCE;
    if (appendonly === want.appendonly && appendfsync === want.appendfsync) return undefined;
    if (options.fix) {
      // The fsync policy first: the file then follows it from its first write.
      await redis.config('SET', 'appendfsync', want.appendfsync);
      if (appendonly !== want.appendonly) {
        await redis.config('SET', 'appendonly', want.appendonly);
        await aofWritten(redis, options.rewriteTimeoutMs ?? 120_000);
      }
      log?.warn(
        { service: 'redis', url: shown, was: { appendonly, appendfsync }, now: want },
        'the Redis openbell started earlier ran without its append-only file: switched on at runtime (its next start has it from the start)',
      );
      return undefined;
    }
    const note =
      appendonly !== 'yes'
        ? 'no append-only file: a restart empties the boards'
        : `append-only file fsynced ${appendfsync}: a machine crash can lose the latest writes`;
    log?.warn(
      { service: 'redis', url: shown, appendonly, appendfsync },
      `Redis has ${note} (openbell reports such a loss, state in /health); openbell does not reconfigure a Redis it did not start: CONFIG SET appendonly yes, CONFIG SET appendfsync always`,
    );
    return note;
  } catch (error) {
    // CONFIG may be renamed or refused (managed Redis): say so, never fail on it.
    const reason = error instanceof Error ? error.message : String(error);
    log?.warn({ service: 'redis', url: shown, err: reason }, 'could not check Redis persistence');
    return `persistence not checked (${reason})`;
  } finally {
    redis.disconnect();
  }
}

/** Waits until Redis has written the append-only file switched on at runtime. */
async function aofWritten(redis: Redis, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = await redis.info('persistence');
    const field = (name: string) => new RegExp(`^${name}:(\\d+)`, 'm').exec(info)?.[1];
    const busy = field('aof_rewrite_in_progress') !== '0' || field('aof_rewrite_scheduled') !== '0';
    if (field('aof_enabled') === '1' && !busy) return;
    if (Date.now() > deadline)
      throw new Error(`Redis did not finish its append-only file within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Derives the management API URL of the broker at `amqpUrl` (credentials included). */
export function managementUrlFor(
  amqpUrl: string,
  override = process.env['RABBITMQ_MANAGEMENT_URL'],
): string {
  if (override !== undefined && override !== '') return override;
  const amqp = new URL(amqpUrl);
  const user = amqp.username === '' ? 'guest' : amqp.username;
  const password = amqp.password === '' ? 'guest' : amqp.password;
  return `http://${user}:${password}@${amqp.hostname}:15672`;
}

/** Splits a URL's credentials into a Basic authorization header, as fetch refuses them inline. */
export function basicAuth(url: string): { url: string; headers: Record<string, string> } {
  const parsed = new URL(url);
  const user = decodeURIComponent(parsed.username);
  const password = decodeURIComponent(parsed.password);
  parsed.username = '';
  parsed.password = '';
  const headers: Record<string, string> =
    user === ''
      ? {}
      : { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` };
  return { url: parsed.toString().replace(/\/$/, ''), headers };
}

const RABBITMQ: ServiceDefinition = {
  name: 'rabbitmq',
  label: 'RabbitMQ 3.10+ with the management and prometheus plugins',
  envVar: 'AMQP_URL',
  defaultUrl: 'amqp://guest:guest@127.0.0.1:5672',
  aptPackage: 'rabbitmq-server',
  async probe(url) {
    const result = await probeAmqp(url);
    if (!result.ok) return result;
    if (!versionAtLeast(result.version, '3.10')) {
      return {
        ok: false,
        error: `RabbitMQ ${result.version} is too old; openbell needs 3.10 or later`,
      };
    }
    const management = basicAuth(managementUrlFor(url));
    const api = await probeHttp(`${management.url}/api/overview`, management.headers);
    if (!api.ok) {
      return {
        ok: false,
        error: `management API not answering (${api.error}); enable it: rabbitmq-plugins enable rabbitmq_management rabbitmq_prometheus`,
      };
    }
    const metrics = await probeHttp(`http://${new URL(management.url).hostname}:15692/metrics`);
    if (!metrics.ok) {
      return {
        ok: false,
        error: `prometheus plugin not answering (${metrics.error}); enable it: rabbitmq-plugins enable rabbitmq_prometheus`,
      };
    }
    return result;
  },
  // Debian's /usr/sbin wrappers switch to the rabbitmq user; the script behind them runs as us.
  findBinary: () => findExecutable(['/usr/lib/rabbitmq/bin/rabbitmq-server', 'rabbitmq-server']),
  plan(binary, dir, projectDir) {
    const confDir = join(projectDir, 'services', 'conf');
    mkdirSync(join(dir, 'mnesia'), { recursive: true });
    mkdirSync(join(dir, 'log'), { recursive: true });
    copyFileSync(join(confDir, 'rabbitmq.conf'), join(dir, 'rabbitmq.conf'));
    copyFileSync(join(confDir, 'enabled_plugins'), join(dir, 'enabled_plugins'));
    return {
      command: binary,
      args: [],
      cwd: dir,
      env: {
        ...process.env,
        // The Erlang cookie lives in $HOME; a project-local HOME keeps it with the data.
        HOME: dir,
        RABBITMQ_NODENAME: 'openbell@localhost',
        RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
        RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
        RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
        RABBITMQ_LOG_BASE: join(dir, 'log'),
        RABBITMQ_PID_FILE: join(dir, 'rabbitmq.pid'),
        RABBITMQ_CONF_ENV_FILE: join(dir, 'rabbitmq-env.conf'),
        RABBITMQ_DIST_PORT: '25672',
        ERL_EPMD_ADDRESS: '127.0.0.1',
        RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
      },
      marker: 'rabbitmq',
      readyTimeoutMs: 90_000,
    };
  },
};

const PROMETHEUS: ServiceDefinition = {
  name: 'prometheus',
  label: 'Prometheus 2.x',
  envVar: 'PROMETHEUS_URL',
  defaultUrl: 'http://127.0.0.1:9090',
  aptPackage: 'prometheus',
  async probe(url) {
    const base = url.replace(/\/$/, '');
    const ready = await probeHttp(`${base}/-/ready`);
    if (!ready.ok) return ready;
    const info = await probeJson(`${base}/api/v1/status/buildinfo`);
    const version =
      (info as { data?: { version?: string } } | undefined)?.data?.version ?? 'unknown';
    return { ok: true, version };
  },
  findBinary: () => findExecutable(['prometheus', '/usr/bin/prometheus']),
  plan(binary, dir, projectDir) {
    mkdirSync(join(dir, 'data'), { recursive: true });
    mkdirSync(join(dir, 'targets'), { recursive: true });
    const config = join(dir, 'prometheus.yml');
    copyFileSync(join(projectDir, 'grafana', 'prometheus.yml'), config);
    // The config's rule_files (rules/*.rules.yml) resolve beside the copy, as in compose's mount;
    // a fresh copy each start, so a rule file deleted from the repo stops being loaded.
    const rules = join(dir, 'rules');
    rmSync(rules, { recursive: true, force: true });
    mkdirSync(rules, { recursive: true });
    const source = join(projectDir, 'grafana', 'rules');
    for (const file of readdirSync(source).filter((name) => name.endsWith('.rules.yml'))) {
      copyFileSync(join(source, file), join(rules, file));
    }
    return {
      command: binary,
      args: [
        `--config.file=${config}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=${new URL(PROMETHEUS.defaultUrl).host}`,
        '--web.enable-lifecycle',
        '--storage.tsdb.retention.time=7d',
      ],
      marker: 'prometheus',
      readyTimeoutMs: 30_000,
    };
  },
};

/** The definitions, in start order. */
export const SERVICES: readonly ServiceDefinition[] = [REDIS, RABBITMQ, PROMETHEUS];
