import { copyFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
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
}

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
      // No persistence: this Redis holds lab and test state that is rebuilt from the feed.
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
        'no',
        '--daemonize',
        'no',
      ],
      marker: 'redis-server',
      readyTimeoutMs: 10_000,
    };
  },
};

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
