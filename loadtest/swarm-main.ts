import { Command, InvalidArgumentError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { mintFeedToken, parseChannel } from '../core/index.ts';
import { integer } from '../cli/options.ts';
import { SWARM_DEFAULTS, runSwarm, type SwarmOptions, type SwarmResult } from './swarm.ts';

const UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/** Parses `1500ms`, `30s`, `2m`, `1.5h` into whole ms; the unit is required. */
export function parseDuration(value: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(value.trim());
  if (match === null)
    throw new InvalidArgumentError(
      `expected a duration like 30s, 2m or 1500ms, got ${JSON.stringify(value)}`,
    );
  return Math.round(Number(match[1]) * UNITS[match[2] as keyof typeof UNITS]);
}

/** Splits a comma-separated channel list; throws on a channel the feed does not have. */
export function parseChannelList(value: string): string[] {
  const channels = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (channels.length === 0) throw new InvalidArgumentError('expected at least one channel');
  for (const channel of channels)
    if (parseChannel(channel) === undefined)
      throw new InvalidArgumentError(
        `unknown channel ${JSON.stringify(channel)} (board:<gappers|gainers|volume|trades|momentum> or symbol:<SYM>)`,
      );
  return channels;
}

/** The open-files limit of this process (`ulimit -n`), when the system says. */
export function openFileLimit(pid: number | 'self' = 'self'): number | undefined {
  try {
    const limits = readFileSync(`/proc/${pid}/limits`, 'utf8');
    const soft = /^Max open files\s+(\d+|unlimited)/m.exec(limits)?.[1];
    return soft === undefined || soft === 'unlimited' ? undefined : Number(soft);
  } catch {
    // Not Linux, or the process is gone: unknown.
    return undefined;
  }
}

const ms = (value: number | null): string => (value === null ? '–' : value.toFixed(1));
const counts = (record: Record<string, number>): string => {
  const entries = Object.entries(record);
  return entries.length === 0 ? '0' : entries.map(([k, n]) => `${k}: ${n}`).join(', ');
};

/** A short human summary of a swarm run. */
export function formatSwarmSummary(r: SwarmResult): string {
  const l = r.latencyMs;
  const rows: [string, string][] = [
    ['url', r.url],
    ['channels', `${r.channels.join(', ')}${r.top === null ? '' : ` (top ${r.top})`}`],
    [
      'clients',
      `${r.subscribed} of ${r.clients} subscribed; connect failures ${counts(r.connectFailures)}`,
    ],
    ['connect', `${r.connectSeconds.toFixed(1)} s, p99 ${ms(r.connectMs.p99)} ms per client`],
    [
      'window',
      `${r.window.seconds.toFixed(1)} s: ${r.window.updates} updates (${r.window.updatesPerSecondPerClient.toFixed(2)}/s per client), ${r.window.snapshots} conflation snapshots`,
    ],
    [
      'latency ms',
      `p50 ${ms(l.p50)}  p90 ${ms(l.p90)}  p99 ${ms(l.p99)}  p99.9 ${ms(l.p999)}  max ${ms(l.max)}  (n ${l.count})`,
    ],
    ['seq gaps', `${r.gaps.total} (missed ${r.gaps.missed}, out of order ${r.gaps.outOfOrder})`],
    [
      'disconnects',
      r.disconnects.total === 0 ? '0' : `${r.disconnects.total} (${counts(r.disconnects.byCode)})`,
    ],
    ['errors', counts(r.errors)],
    [
      'driver',
      `${r.driver.cpuCores.toFixed(2)} cores, ${r.driver.shards} ${r.driver.shards === 1 ? 'thread' : 'threads'}, event-loop delay p99 ${r.driver.eventLoopDelayP99Ms.toFixed(1)} ms (busiest)`,
    ],
  ];
  return rows.map(([k, v]) => `${k.padEnd(12)} ${v}`).join('\n');
}

interface SwarmFlags {
  url: string;
  clients: number;
  channels: string[];
  top?: number;
  duration: number;
  ramp: number;
  warmup: number;
  maxConnecting: number;
  connectTimeout: number;
  shards: number;
  token?: string;
  secret?: string;
  sharedToken?: boolean;
  origin?: string;
  json?: boolean;
}

const env = (name: string): string => `OPENBELL_SWARM_${name}`;

/** `openbell swarm`: N authenticated feed clients; latency, rates, gaps and disconnects. */
export function swarmCommand(): Command {
  const d = SWARM_DEFAULTS;
  return new Command('swarm')
    .description(
      'Connect N trader clients to the feed, subscribe each to the channels, and measure delivery latency (receive time − envelope ts, after every client is subscribed), updates/s, seq gaps, errors and disconnects. Summary on stderr with --json (JSON on stdout), on stdout without.',
    )
    .addOption(
      new Option('--url <url>', 'feed WebSocket URL')
        .env(env('URL'))
        .default('ws://127.0.0.1:8080/ws'),
    )
    .addOption(
      new Option('--clients <n>', 'clients').env(env('CLIENTS')).argParser(integer).default(100),
    )
    .addOption(
      new Option('--channels <list>', 'comma-separated channels each client subscribes to')
        .env(env('CHANNELS'))
        .argParser(parseChannelList)
        .default(
          ['board:gainers', 'board:volume', 'board:trades'],
          'board:gainers,board:volume,board:trades',
        ),
    )
    .addOption(
      new Option('--top <n>', 'rows per board (default: the feed’s)')
        .env(env('TOP'))
        .argParser(integer),
    )
    .addOption(durationOption('--duration <time>', 'measured window', 'DURATION', 30_000, '30s'))
    .addOption(durationOption('--ramp <time>', 'spread the connections over', 'RAMP', 5000, '5s'))
    .addOption(
      durationOption(
        '--warmup <time>',
        'wait after the last subscription before measuring',
        'WARMUP',
        d.warmupMs,
        '1s',
      ),
    )
    .addOption(
      new Option('--max-connecting <n>', 'handshakes in flight at once')
        .env(env('MAX_CONNECTING'))
        .argParser(integer)
        .default(d.maxConnecting),
    )
    .addOption(
      durationOption(
        '--connect-timeout <time>',
        'a client’s time to be subscribed',
        'CONNECT_TIMEOUT',
        d.connectTimeoutMs,
        '10s',
      ),
    )
    .addOption(
      new Option('--shards <n>', 'worker threads the clients are spread over')
        .env(env('SHARDS'))
        .argParser(integer)
        .default(availableParallelism(), 'available parallelism'),
    )
    .addOption(
      new Option('--token <token>', 'one bearer token for every client (wins over --secret)').env(
        env('TOKEN'),
      ),
    )
    .addOption(
      new Option('--secret <secret>', 'feed secret: mint a token per client (sub swarm-<n>)').env(
        'FEED_JWT_SECRET',
      ),
    )
    .addOption(
      new Option('--shared-token', 'with --secret: mint one token for every client').env(
        env('SHARED_TOKEN'),
      ),
    )
    .addOption(
      new Option('--origin <origin>', 'Origin header to send (none by default)').env(env('ORIGIN')),
    )
    .addOption(new Option('--json', 'print the result as JSON on stdout').env(env('JSON')))
    .action(async (flags: SwarmFlags, command: Command) => {
      const options = await swarmOptions(flags, command);
      const limit = openFileLimit();
      if (limit !== undefined && flags.clients + 64 > limit)
        process.stderr.write(
          `swarm: warning: ${flags.clients} clients need as many file descriptors; ulimit -n is ${limit}\n`,
        );
      const result = await runUntilSignal(options);
      const summary = formatSwarmSummary(result);
      if (flags.json === true) {
        process.stderr.write(`${summary}\n`);
        process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      } else process.stdout.write(`${summary}\n`);
      if (result.subscribed === 0)
        throw new Error(`swarm: no client subscribed (${counts(result.connectFailures)})`);
    });
}

function durationOption(
  flag: string,
  text: string,
  name: string,
  value: number,
  shown: string,
): Option {
  return new Option(flag, `${text} (30s, 2m, 1500ms)`)
    .env(env(name))
    .argParser(parseDuration)
    .default(value, shown);
}

/** Checks the flags' ranges and combinations; builds the token source. */
async function swarmOptions(flags: SwarmFlags, command: Command): Promise<SwarmOptions> {
  if (!/^wss?:\/\//.test(flags.url))
    throw new Error(`swarm: --url must be ws:// or wss://, got ${JSON.stringify(flags.url)}`);
  if (flags.clients < 1) throw new Error('swarm: --clients must be at least 1');
  if (flags.top !== undefined && flags.top < 1) throw new Error('swarm: --top must be at least 1');
  if (flags.duration <= 0) throw new Error('swarm: --duration must be positive');
  if (flags.maxConnecting < 1) throw new Error('swarm: --max-connecting must be at least 1');
  if (flags.shards < 1) throw new Error('swarm: --shards must be at least 1');
  if (flags.connectTimeout <= 0) throw new Error('swarm: --connect-timeout must be positive');
  const fromCli = (name: string): boolean => command.getOptionValueSource(name) === 'cli';
  if (
    flags.token !== undefined &&
    flags.secret !== undefined &&
    fromCli('token') &&
    fromCli('secret')
  )
    throw new Error('swarm: give --token or --secret, not both');
  const ttlSeconds = Math.ceil((flags.ramp + flags.warmup + flags.duration) / 1000) + 600;
  let token: SwarmOptions['token'];
  if (flags.token !== undefined && flags.token !== '') token = flags.token;
  else if (flags.secret !== undefined && flags.secret !== '') {
    const secret = flags.secret;
    // Minting checks the secret: a bad one fails here, once, not per client.
    const shared = await mintFeedToken(secret, { sub: 'swarm', ttlSeconds });
    token =
      flags.sharedToken === true
        ? shared
        : (n: number) => mintFeedToken(secret, { sub: `swarm-${n}`, ttlSeconds });
  } else if (flags.sharedToken === true) throw new Error('swarm: --shared-token needs --secret');
  return {
    url: flags.url,
    clients: flags.clients,
    channels: flags.channels,
    ...(flags.top === undefined ? {} : { top: flags.top }),
    durationMs: flags.duration,
    rampMs: flags.ramp,
    warmupMs: flags.warmup,
    maxConnecting: flags.maxConnecting,
    connectTimeoutMs: flags.connectTimeout,
    shards: flags.shards,
    ...(token === undefined ? {} : { token }),
    ...(flags.origin === undefined ? {} : { origin: flags.origin }),
  };
}

/** Runs the swarm; the first SIGINT/SIGTERM ends it early (the result still prints), a second exits. */
async function runUntilSignal(options: SwarmOptions): Promise<SwarmResult> {
  const abort = new AbortController();
  const stop = (signal: NodeJS.Signals): void => {
    if (abort.signal.aborted) process.exit(130);
    process.stderr.write(`\nswarm: ${signal}: stopping (again to exit now)\n`);
    abort.abort();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  const tty = process.stderr.isTTY;
  try {
    return await runSwarm({
      ...options,
      signal: abort.signal,
      onProgress: (p) => {
        if (!tty) return;
        process.stderr.write(
          `\r\x1b[K swarm ${p.phase} ${(p.elapsedMs / 1000).toFixed(0)} s | subscribed ${p.subscribed}/${options.clients} | failed ${p.connectFailures} | open ${p.open} | updates ${p.updates} | p99 ${p.recentLatencyP99Ms ?? '–'} ms | disconnects ${p.disconnects}`,
        );
      },
    });
  } finally {
    if (tty) process.stderr.write('\r\x1b[K');
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}
