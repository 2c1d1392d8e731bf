import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, openSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { SERVICES, type ServiceName } from './definitions.ts';
import { probeAmqp, probeRedis, waitFor, type ProbeResult } from './probe.ts';
import { tail } from './processes.ts';

/**
 * A Redis or RabbitMQ of one test or one lab run: its own loopback port and data folder, started
 * from the installed binary, stopped with it. Faults (restart, kill, pause) are done to it and
 * never to a service somebody else uses.
 */
export interface PrivateService {
  readonly name: Extract<ServiceName, 'redis' | 'rabbitmq'>;
  /** Connection URL (the port stays the same across restarts). */
  readonly url: string;
  readonly port: number;
  /** Its data folder (kept across restarts, deleted by {@link PrivateService.close}). */
  readonly dir: string;
  /** Whether the process runs (paused counts as running). */
  readonly running: boolean;
  /** Starts it again on the same port and data; resolves once it answers. Idempotent. */
  start(): Promise<void>;
  /** Stops it gracefully (SIGTERM: Redis writes its append-only file, RabbitMQ shuts down). */
  stop(): Promise<void>;
  /** Kills it at once (SIGKILL), as a crash or an OOM kill would. */
  kill(): Promise<void>;
  /** Freezes it (SIGSTOP): connections stay open and nothing answers. */
  pause(): void;
  /** Thaws a paused instance (SIGCONT). */
  resume(): void;
  /** Kills it if running and deletes its data folder. Idempotent. */
  close(): Promise<void>;
}

/** Options of {@link startPrivateRedis}. */
export interface PrivateRedisOptions {
  /** Parent folder; the instance's data goes in a fresh sub-folder. */
  baseDir: string;
  /** Redis's `appendonly` (its append-only file). @default true */
  appendOnly?: boolean;
  /** Redis's `appendfsync`. @default 'everysec' */
  appendFsync?: 'always' | 'everysec' | 'no';
  /** Installed binary. @default the one the services script finds */
  binary?: string;
}

/** Options of {@link startPrivateRabbitmq}. */
export interface PrivateRabbitmqOptions {
  /** Parent folder; the node's data goes in a fresh sub-folder. */
  baseDir: string;
  /** Installed `rabbitmq-server` script. @default the one the services script finds */
  binary?: string;
}

/** Processes started here that this process must not leave behind if it dies first. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.once('exit', () => {
    for (const child of live) killGroup(child, 'SIGKILL');
  });
}

/** A free TCP port on loopback (the kernel picks it; it is released before the service binds). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port was assigned');
  return address.port;
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // The group is gone already (or never formed): signal the process itself.
    try {
      child.kill(signal);
    } catch {
      // It exited between the check and the signal: nothing left to signal.
    }
  }
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

interface Launch {
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Resolves once the service answers. */
  ready(): Promise<void>;
}

/** The life cycle shared by both kinds: one child process group at a time. */
class PrivateProcess implements PrivateService {
  private child: ChildProcess | undefined;
  private starting: Promise<void> | undefined;
  private closed = false;

  readonly name: 'redis' | 'rabbitmq';
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  private readonly launch: Launch;

  constructor(name: 'redis' | 'rabbitmq', url: string, port: number, dir: string, launch: Launch) {
    this.name = name;
    this.url = url;
    this.port = port;
    this.dir = dir;
    this.launch = launch;
  }

  get running(): boolean {
    const child = this.child;
    return child !== undefined && child.exitCode === null && child.signalCode === null;
  }

  start(): Promise<void> {
    if (this.closed) return Promise.reject(new Error(`private ${this.name} is closed`));
    if (this.running) return this.starting ?? Promise.resolve();
    this.starting = this.spawn().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private async spawn(): Promise<void> {
    const logFile = join(this.dir, `${this.name}.log`);
    const fd = openSync(logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(this.launch.command, this.launch.args, {
        // Its own process group: a signal reaches the server and whatever its script started.
        detached: true,
        stdio: ['ignore', fd, fd],
        env: this.launch.env ?? process.env,
        cwd: this.launch.cwd ?? this.dir,
      });
    } finally {
      closeSync(fd);
    }
    child.on('error', () => undefined);
    this.child = child;
    live.add(child);
    installExitHook();
    child.once('exit', () => live.delete(child));
    const died = exited(child).then(() => {
      throw new Error(`private ${this.name} exited while starting:\n${tail(logFile)}`);
    });
    await Promise.race([this.launch.ready(), died]);
    died.catch(() => undefined);
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    this.resume();
    killGroup(child, 'SIGTERM');
    const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 30_000);
    await exited(child);
    clearTimeout(timer);
  }

  async kill(): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    killGroup(child, 'SIGKILL');
    await exited(child);
  }

  pause(): void {
    if (this.child !== undefined) killGroup(this.child, 'SIGSTOP');
  }

  resume(): void {
    if (this.child !== undefined) killGroup(this.child, 'SIGCONT');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Resolves once `probe` succeeds; rejects with its last error after `timeoutMs`. */
async function answers(
  probe: () => Promise<ProbeResult>,
  timeoutMs: number,
  name: string,
): Promise<void> {
  const result = await waitFor(probe, timeoutMs);
  if (!result.ok) throw new Error(`private ${name} did not answer: ${result.error}`);
}

function binaryOf(name: 'redis' | 'rabbitmq', given: string | undefined): string {
  const binary = given ?? SERVICES.find((s) => s.name === name)?.findBinary();
  if (binary === undefined) {
    throw new Error(`${name} is not installed; \`npm run services -- up\` installs it`);
  }
  return binary;
}

/** Starts a Redis of its own on a free loopback port, with an append-only file by default. */
export async function startPrivateRedis(options: PrivateRedisOptions): Promise<PrivateService> {
  const binary = binaryOf('redis', options.binary);
  // Absolute: Redis runs with its data folder as its working directory.
  const dir = resolve(options.baseDir, `redis-${randomBytes(4).toString('hex')}`);
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const url = `redis://127.0.0.1:${port}`;
  const args = [
    '--bind',
    '127.0.0.1',
    '--port',
    String(port),
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    (options.appendOnly ?? true) ? 'yes' : 'no',
    '--appendfsync',
    options.appendFsync ?? 'everysec',
    '--daemonize',
    'no',
  ];
  const service = new PrivateProcess('redis', url, port, dir, {
    command: binary,
    args,
    ready: () => answers(() => probeRedis(url), 15_000, 'redis'),
  });
  await service.start();
  return service;
}

/**
 * Starts a RabbitMQ node of its own: a unique node name, free AMQP and distribution ports, a data
 * folder and Erlang cookie (its HOME) of its own, no plugins (it starts in ~7 s).
 */
export async function startPrivateRabbitmq(
  options: PrivateRabbitmqOptions,
): Promise<PrivateService> {
  const binary = binaryOf('rabbitmq', options.binary);
  const id = randomBytes(4).toString('hex');
  const dir = resolve(options.baseDir, `rabbitmq-${id}`);
  mkdirSync(join(dir, 'mnesia'), { recursive: true });
  mkdirSync(join(dir, 'log'), { recursive: true });
  const port = await freePort();
  const distPort = await freePort();
  writeFileSync(
    join(dir, 'rabbitmq.conf'),
    [
      `listeners.tcp.1 = 127.0.0.1:${port}`,
      'log.console = false',
      'log.file.level = warning',
      // A private node on a busy test machine: never block publishers on the disk alarm.
      'disk_free_limit.absolute = 1',
      '',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'enabled_plugins'), '[].\n');
  const url = `amqp://guest:guest@127.0.0.1:${port}`;
  const service = new PrivateProcess('rabbitmq', url, port, dir, {
    command: binary,
    args: [],
    env: {
      ...process.env,
      HOME: dir,
      RABBITMQ_NODENAME: `openbell-${id}@localhost`,
      RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
      RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
      RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
      RABBITMQ_LOG_BASE: join(dir, 'log'),
      RABBITMQ_PID_FILE: join(dir, 'rabbitmq.pid'),
      RABBITMQ_CONF_ENV_FILE: join(dir, 'rabbitmq-env.conf'),
      RABBITMQ_DIST_PORT: String(distPort),
      ERL_EPMD_ADDRESS: '127.0.0.1',
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
    },
    ready: () => answers(() => probeAmqp(url), 90_000, 'rabbitmq'),
  });
  await service.start();
  return service;
}
