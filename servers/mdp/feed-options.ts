import { InvalidArgumentError, Option } from 'commander';
import { FEED_DEFAULTS, parseFeedLimits, type FeedLimits } from '../../core/index.ts';
import { integer } from '../../cli/options.ts';
import { formatTtl, parseTtl } from '../../cli/token.ts';
import { LOOPBACK, parseAllowedOrigins } from './feed-origin.ts';

/** The feed settings a server passes to `createFeed` (besides its connections). */
export interface FeedConfig {
  secret?: string | undefined;
  insecure: boolean;
  limits: FeedLimits;
  allowedOrigins: string[];
}

/** The flags of {@link feedOptions}. */
export interface FeedFlags {
  feedSecret?: string;
  feedInsecure?: boolean | string;
  feedCadenceMs: number;
  feedSlices: number;
  feedAllowedOrigins?: string;
  feedMaxConnectionsPerIp: number;
  feedMaxConnectionsPerSubject: number;
  feedMaxSubscriptions: number;
  feedMessagesPerSecond: number;
  feedHeaderTimeoutMs: number;
  feedHandshakeTimeoutMs: number;
  /** Seconds (parsed from `90s`, `15m`, `24h`, `7d`). */
  feedMaxTokenTtl: number;
  feedSoftLimitBytes: number;
  feedHardLimitBytes: number;
  feedMaxLagMs: number;
  feedSlowCloseMs: number;
}

/** The trader feed's options (servers/mdp/FEED.md), each with its environment twin. */
export function feedOptions(): Option[] {
  const d = FEED_DEFAULTS;
  const number = (flag: string, env: string, text: string, value: number): Option =>
    new Option(flag, text).env(env).argParser(integer).default(value);
  return [
    new Option('--feed-secret <secret>', 'HS256 secret of trader tokens (≥ 32 characters)').env(
      'FEED_JWT_SECRET',
    ),
    new Option('--feed-insecure [yes]', 'accept traders without a token (local labs only)')
      .env('FEED_INSECURE')
      .argParser(parseYes),
    number('--feed-cadence-ms <ms>', 'FEED_CADENCE_MS', 'update cadence per channel', d.cadenceMs),
    number(
      '--feed-slices <n>',
      'FEED_SLICES',
      'ticks per cadence, each sending a share of the clients their updates',
      d.slices,
    ),
    new Option(
      '--feed-allowed-origins <list>',
      `comma-separated browser origins allowed to connect: scheme://host[:port], "${LOOPBACK}" (http(s) on localhost, 127.0.0.1 or [::1], any port) or "*"; the Host header is never trusted`,
    )
      .env('FEED_ALLOWED_ORIGINS')
      .default(LOOPBACK),
    number(
      '--feed-max-connections-per-ip <n>',
      'FEED_MAX_CONNECTIONS_PER_IP',
      'connections per client address (IPv6: per /64): WebSockets and requests not sent yet',
      d.maxConnectionsPerIp,
    ),
    number(
      '--feed-max-connections-per-subject <n>',
      'FEED_MAX_CONNECTIONS_PER_SUBJECT',
      'WebSockets per token subject (sub); more are closed with 4429',
      d.maxConnectionsPerSubject,
    ),
    number(
      '--feed-max-subscriptions <n>',
      'FEED_MAX_SUBSCRIPTIONS',
      'channels per connection',
      d.maxSubscriptions,
    ),
    number(
      '--feed-messages-per-second <n>',
      'FEED_MESSAGES_PER_SECOND',
      'client messages per second (bursts of twice as many)',
      d.messagesPerSecond,
    ),
    number(
      '--feed-header-timeout-ms <ms>',
      'FEED_HEADER_TIMEOUT_MS',
      'time a new connection has to send its request headers (upgrade or page request)',
      d.headerTimeoutMs,
    ),
    number(
      '--feed-handshake-timeout-ms <ms>',
      'FEED_HANDSHAKE_TIMEOUT_MS',
      'time to authenticate after connecting',
      d.handshakeTimeoutMs,
    ),
    new Option(
      '--feed-max-token-ttl <duration>',
      'longest token lifetime (exp − iat) accepted: 90s, 15m, 8h, 7d; `openbell token` mints no longer',
    )
      .env('FEED_MAX_TOKEN_TTL')
      .argParser(parseTtl)
      .default(d.maxTokenTtlSeconds, formatTtl(d.maxTokenTtlSeconds)),
    number(
      '--feed-soft-limit-bytes <n>',
      'FEED_SOFT_LIMIT_BYTES',
      'unsent bytes past which a client gets conflated snapshots',
      d.softLimitBytes,
    ),
    number(
      '--feed-hard-limit-bytes <n>',
      'FEED_HARD_LIMIT_BYTES',
      'unsent bytes past which a client is closed (1013)',
      d.hardLimitBytes,
    ),
    number(
      '--feed-max-lag-ms <ms>',
      'FEED_MAX_LAG_MS',
      'how far behind a client may read (an unanswered ping) before it gets conflated snapshots',
      d.maxLagMs,
    ),
    number(
      '--feed-slow-close-ms <ms>',
      'FEED_SLOW_CLOSE_MS',
      'how long a client may stay behind, with updates held back, before it is closed (1013)',
      d.slowCloseMs,
    ),
  ];
}

/** Validated feed settings from the flags (named errors on bad values). */
export function parseFeedFlags(flags: FeedFlags): FeedConfig {
  // Empty, like unset, is the default: an empty env twin must not lock every browser out.
  const listed = flags.feedAllowedOrigins?.trim() ?? '';
  const allowedOrigins = (listed === '' ? LOOPBACK : listed)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  // Checked here so a typo stops the process at start, with the entry named.
  parseAllowedOrigins(allowedOrigins);
  return {
    secret: flags.feedSecret === '' ? undefined : flags.feedSecret,
    insecure: flags.feedInsecure === true || parseYes(String(flags.feedInsecure ?? '')),
    limits: parseFeedLimits({
      cadenceMs: flags.feedCadenceMs,
      slices: flags.feedSlices,
      maxConnectionsPerIp: flags.feedMaxConnectionsPerIp,
      maxConnectionsPerSubject: flags.feedMaxConnectionsPerSubject,
      maxSubscriptions: flags.feedMaxSubscriptions,
      messagesPerSecond: flags.feedMessagesPerSecond,
      messagesBurst: flags.feedMessagesPerSecond * 2,
      headerTimeoutMs: flags.feedHeaderTimeoutMs,
      handshakeTimeoutMs: flags.feedHandshakeTimeoutMs,
      maxTokenTtlSeconds: flags.feedMaxTokenTtl,
      softLimitBytes: flags.feedSoftLimitBytes,
      hardLimitBytes: flags.feedHardLimitBytes,
      maxLagMs: flags.feedMaxLagMs,
      slowCloseMs: flags.feedSlowCloseMs,
    }),
    allowedOrigins,
  };
}

/**
 * A yes/no value of a flag or its environment twin: `1`, `true`, `yes` are yes; `0`, `false`,
 * `no` and empty are no; anything else is an error (a typo must not open the feed).
 */
export function parseYes(value: string): boolean {
  const v = value.trim().toLowerCase();
  if (v === '1' || v === 'true' || v === 'yes') return true;
  if (v === '' || v === '0' || v === 'false' || v === 'no') return false;
  throw new InvalidArgumentError(`expected 1/true/yes or 0/false/no, got ${JSON.stringify(value)}`);
}
