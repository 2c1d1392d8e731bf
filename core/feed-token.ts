import { SignJWT, errors as joseErrors, jwtVerify } from 'jose';
import { ConfigError } from './errors.ts';

/** The claims of a feed token. */
export interface FeedClaims {
  sub: string;
  /** Expiry, epoch seconds. */
  exp: number;
  /** Channels the token may subscribe to (`*` at the end matches any suffix); all when absent. */
  channels?: string[];
}

/**
 * Why {@link verifyFeedToken} refused a token: `lifetime` when `exp − iat` is past the maximum,
 * `future` when it was issued later than now (beyond {@link TOKEN_CLOCK_SKEW_SECONDS}).
 */
export type TokenFailure = 'expired' | 'invalid' | 'lifetime' | 'future';

/** Options of {@link verifyFeedToken}. */
export interface VerifyFeedTokenOptions {
  /** Longest lifetime (`exp − iat`) accepted, seconds. @default 86400 */
  maxTtlSeconds?: number;
  /** The current time, epoch ms (tests). @default Date.now() */
  nowMs?: number;
}

/** How far in the future a token's `iat` may be: the clocks of minter and feed may differ this much. */
export const TOKEN_CLOCK_SKEW_SECONDS = 30;
/** Default of {@link VerifyFeedTokenOptions.maxTtlSeconds}: a day. */
export const DEFAULT_MAX_TOKEN_TTL_SECONDS = 86_400;

const ALGORITHM = 'HS256';
const AUDIENCE = 'openbell-feed';
/** HS256 wants at least as many bytes of secret as the hash has. */
export const MIN_SECRET_LENGTH = 32;

/** Throws {@link ConfigError} unless `secret` is long enough to sign tokens. */
export function assertFeedSecret(secret: string): void {
  if (secret.length < MIN_SECRET_LENGTH) {
    throw new ConfigError(
      'feed.secret',
      `must be at least ${MIN_SECRET_LENGTH} characters (got ${secret.length})`,
    );
  }
}

/** Mints a signed, expiring feed token (JWT, HS256). */
export async function mintFeedToken(
  secret: string,
  claims: { sub: string; ttlSeconds: number; channels?: readonly string[] },
): Promise<string> {
  assertFeedSecret(secret);
  if (!(claims.ttlSeconds > 0)) throw new ConfigError('ttl', 'must be positive');
  if (claims.sub.length === 0) throw new ConfigError('sub', 'must not be empty');
  const jwt = new SignJWT(claims.channels === undefined ? {} : { channels: [...claims.channels] })
    .setProtectedHeader({ alg: ALGORITHM })
    .setSubject(claims.sub)
    .setAudience(AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + Math.ceil(claims.ttlSeconds));
  return jwt.sign(new TextEncoder().encode(secret));
}

/**
 * Verifies a feed token: its signature, algorithm, audience and expiry, an `iat` no later than now
 * (give or take {@link TOKEN_CLOCK_SKEW_SECONDS}), and a lifetime (`exp − iat`) within the maximum.
 */
export async function verifyFeedToken(
  secret: string,
  token: string,
  options: VerifyFeedTokenOptions = {},
): Promise<FeedClaims | { failure: TokenFailure; detail: string }> {
  const maxTtlSeconds = options.maxTtlSeconds ?? DEFAULT_MAX_TOKEN_TTL_SECONDS;
  const nowMs = options.nowMs ?? Date.now();
  try {
    const { payload } = await jwtVerify(token, new TextEncoder().encode(secret), {
      algorithms: [ALGORITHM],
      audience: AUDIENCE,
      requiredClaims: ['sub', 'exp', 'iat'],
      currentDate: new Date(nowMs),
    });
    const { exp, iat } = payload as { exp: number; iat: number };
    if (iat > nowMs / 1000 + TOKEN_CLOCK_SKEW_SECONDS)
      return { failure: 'future', detail: 'token issued in the future' };
    if (exp - iat > maxTtlSeconds)
      return { failure: 'lifetime', detail: `token lifetime over ${maxTtlSeconds} s` };
    const channels = payload['channels'];
    if (channels !== undefined && !isStringArray(channels)) {
      return { failure: 'invalid', detail: 'channels must be a list of strings' };
    }
    return {
      sub: payload.sub!,
      exp: payload.exp!,
      ...(channels === undefined ? {} : { channels }),
    };
  } catch (error) {
    if (error instanceof joseErrors.JWTExpired)
      return { failure: 'expired', detail: 'token expired' };
    return { failure: 'invalid', detail: (error as Error).message.slice(0, 120) };
  }
}

/** Whether a token's allow-list covers `channel` (no list: every channel). */
export function channelAllowed(claims: Pick<FeedClaims, 'channels'>, channel: string): boolean {
  if (claims.channels === undefined) return true;
  return claims.channels.some((pattern) =>
    pattern.endsWith('*') ? channel.startsWith(pattern.slice(0, -1)) : channel === pattern,
  );
}

const isStringArray = (value: unknown): value is string[] =>
  Array.isArray(value) && value.every((item) => typeof item === 'string');
