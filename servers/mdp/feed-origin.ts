import { ConfigError } from '../../core/index.ts';

/** The allow-list entry for the loopback origins: http(s) on localhost, 127.0.0.1 or [::1], any port. */
export const LOOPBACK = 'loopback';

/** Which browser origins may open the feed (see {@link parseAllowedOrigins}). */
export interface OriginPolicy {
  any: boolean;
  loopback: boolean;
  origins: ReadonlySet<string>;
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * Parses the feed's origin allow-list: exact origins (`https://scanner.example.com`, scheme, host
 * and port as the browser sends them), `loopback`, or `*` for any. The `Host` header is never
 * trusted: under DNS rebinding a foreign page's requests carry its own name as `Host`.
 * Throws ConfigError naming a malformed entry.
 */
export function parseAllowedOrigins(entries: readonly string[]): OriginPolicy {
  const policy = { any: false, loopback: false, origins: new Set<string>() };
  for (const raw of entries) {
    const entry = raw.trim();
    if (entry === '') continue;
    if (entry === '*') policy.any = true;
    else if (entry === LOOPBACK) policy.loopback = true;
    else policy.origins.add(normalizeOrigin(entry));
  }
  return policy;
}

/** Whether a browser's `Origin` header is allowed (`null` and malformed ones never are, but for `*`). */
export function originAllowed(policy: OriginPolicy, origin: string): boolean {
  if (policy.any) return true;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  if (policy.origins.has(url.origin)) return true;
  return policy.loopback && LOOPBACK_HOSTS.has(url.hostname);
}

function normalizeOrigin(entry: string): string {
  let url: URL;
  try {
    url = new URL(entry);
  } catch {
    throw new ConfigError('feed.allowedOrigins', `not an origin: ${JSON.stringify(entry)}`);
  }
  if (
    (url.protocol !== 'http:' && url.protocol !== 'https:') ||
    url.pathname.length > 1 ||
    url.search !== '' ||
    url.hash !== ''
  )
    throw new ConfigError(
      'feed.allowedOrigins',
      `expected scheme://host[:port], "${LOOPBACK}" or "*", got ${JSON.stringify(entry)}`,
    );
  return url.origin;
}
