import { Command, InvalidArgumentError, Option } from 'commander';
import { FEED_DEFAULTS, mintFeedToken } from '../core/index.ts';

/** Parses `90s`, `15m`, `8h`, `7d` (or plain seconds) into seconds. */
export function parseTtl(value: string): number {
  const match = /^(\d+(?:\.\d+)?)(s|m|h|d)?$/.exec(value.trim());
  if (match === null)
    throw new InvalidArgumentError(`expected a duration like 90s, 15m, 8h or 7d, got ${value}`);
  const unit = { s: 1, m: 60, h: 3600, d: 86_400 }[(match[2] ?? 's') as 's' | 'm' | 'h' | 'd'];
  const seconds = Number(match[1]) * unit;
  if (!(seconds > 0)) throw new InvalidArgumentError('the duration must be positive');
  return seconds;
}

/** Seconds as the shortest of `7d`, `24h`, `15m`, `90s` that says it exactly. */
export function formatTtl(seconds: number): string {
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3600],
    ['m', 60],
  ] as const)
    if (seconds >= size && seconds % size === 0) return `${seconds / size}${unit}`;
  return `${seconds}s`;
}

interface TokenFlags {
  sub: string;
  ttl: number;
  maxTtl: number;
  channels?: string;
  feedSecret?: string;
}

/** `openbell token`: mints a signed, expiring trader token for the feed. */
export function tokenCommand(): Command {
  return new Command('token')
    .description('Mint a signed, expiring trader token for the feed (printed on stdout).')
    .requiredOption('--sub <name>', 'who the token is for')
    .addOption(
      new Option('--ttl <duration>', 'lifetime: 90s, 15m, 8h, 7d')
        .argParser(parseTtl)
        .default(8 * 3600, '8h'),
    )
    .addOption(
      new Option(
        '--max-ttl <duration>',
        'refuse a --ttl longer than this: the feed’s --feed-max-token-ttl, whose env twin it shares',
      )
        .env('FEED_MAX_TOKEN_TTL')
        .argParser(parseTtl)
        .default(FEED_DEFAULTS.maxTokenTtlSeconds, formatTtl(FEED_DEFAULTS.maxTokenTtlSeconds)),
    )
    .addOption(
      new Option(
        '--channels <list>',
        'comma-separated allow-list (a trailing * matches any suffix), e.g. board:*,symbol:AAPL',
      ),
    )
    .addOption(
      new Option('--feed-secret <secret>', 'HS256 secret (≥ 32 characters)').env('FEED_JWT_SECRET'),
    )
    .action(async (flags: TokenFlags) => {
      if (flags.feedSecret === undefined || flags.feedSecret === '') {
        throw new Error('FEED_JWT_SECRET (or --feed-secret) is required to sign a token');
      }
      // The feed would refuse it: better said now than at the trader's first connection.
      if (flags.ttl > flags.maxTtl)
        throw new Error(
          `--ttl ${formatTtl(flags.ttl)} is over the feed's token lifetime limit (${formatTtl(flags.maxTtl)}; --max-ttl or FEED_MAX_TOKEN_TTL)`,
        );
      const channels = flags.channels
        ?.split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      const token = await mintFeedToken(flags.feedSecret, {
        sub: flags.sub,
        ttlSeconds: flags.ttl,
        ...(channels === undefined ? {} : { channels }),
      });
      process.stdout.write(`${token}\n`);
    });
}
