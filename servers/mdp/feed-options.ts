import { InvalidArgumentError, Option } from 'commander';
import { FEED_DEFAULTS, parseFeedLimits, type FeedLimits } from '../../core/index.ts';
import { integer } from '../../cli/options.ts';

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
  feedMaxSubscriptions: number;
  feedMessagesPerSecond: number;
  feedHandshakeTimeoutMs: number;
  feedSoftLimitBytes: number;
  feedHardLimitBytes: number;
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
      'comma-separated browser origins allowed besides the page’s own host',
    ).env('FEED_ALLOWED_ORIGINS'),
    number(
      '--feed-max-connections-per-ip <n>',
      'FEED_MAX_CONNECTIONS_PER_IP',
      'open WebSockets per client address',
      d.maxConnectionsPerIp,
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
      '--feed-handshake-timeout-ms <ms>',
      'FEED_HANDSHAKE_TIMEOUT_MS',
      'time to authenticate after connecting',
      d.handshakeTimeoutMs,
    ),
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
  ];
}

/** Validated feed settings from the flags (named errors on bad values). */
export function parseFeedFlags(flags: FeedFlags): FeedConfig {
  return {
    secret: flags.feedSecret === '' ? undefined : flags.feedSecret,
    insecure: flags.feedInsecure === true || parseYes(String(flags.feedInsecure ?? '')),
    limits: parseFeedLimits({
      cadenceMs: flags.feedCadenceMs,
      slices: flags.feedSlices,
      maxConnectionsPerIp: flags.feedMaxConnectionsPerIp,
      maxSubscriptions: flags.feedMaxSubscriptions,
      messagesPerSecond: flags.feedMessagesPerSecond,
      messagesBurst: flags.feedMessagesPerSecond * 2,
      handshakeTimeoutMs: flags.feedHandshakeTimeoutMs,
      softLimitBytes: flags.feedSoftLimitBytes,
      hardLimitBytes: flags.feedHardLimitBytes,
    }),
    allowedOrigins: (flags.feedAllowedOrigins ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
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
