import { previousTradingDate } from './calendar.ts';
import { isValidSymbol } from './decode.ts';
import { ConfigError, ServiceError } from './errors.ts';
import { assertDate } from './names.ts';
import { redactUrl } from './redact.ts';

/** Options of {@link fetchPrevCloses}. */
export interface PrevCloseOptions {
  /** Massive API key; sent only as a Bearer token, never in a URL, error or log. */
  apiKey: string;
  /** @default 'https://api.massive.com' */
  baseUrl?: string;
  /** The fetch implementation, for tests and proxies. @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Longest the request (headers and body) may take. @default 30000 */
  timeoutMs?: number;
}

/** Previous closes that serve one trading date. */
export interface PrevCloses {
  /** The trading date served (its previous trading date's closes). */
  date: string;
  /** Where they came from: a redacted URL or a file path. */
  source: string;
  /** Symbol → previous close, every one finite and > 0. */
  closes: Map<string, number>;
  /** Rows left out: no valid symbol, or a close that is missing, non-finite or ≤ 0. */
  skipped: number;
}

const DEFAULT_BASE_URL = 'https://api.massive.com';
const DEFAULT_TIMEOUT_MS = 30_000;
const BODY_EXCERPT_CHARS = 200;

/**
 * Fetches the previous closes serving trading date `date`: the grouped daily bars of
 * `previousTradingDate(date)`, `GET {baseUrl}/v2/aggs/grouped/locale/us/market/stocks/{day}
 * ?adjusted=true`, authenticated by an `Authorization: Bearer` header (never the key in the URL,
 * errors or logs). Throws {@link ServiceError} (HTTP status, redacted URL) when the request
 * fails, the answer is not a grouped-daily response, or it holds no usable close.
 */
export async function fetchPrevCloses(
  date: string,
  options: PrevCloseOptions,
): Promise<PrevCloses> {
  assertDate(date);
  if (options.apiKey.trim() === '') throw new ConfigError('massive.apiKey', 'must not be empty');
  const base = (options.baseUrl ?? DEFAULT_BASE_URL).replace(/\/+$/, '');
  const day = previousTradingDate(date);
  const url = `${base}/v2/aggs/grouped/locale/us/market/stocks/${day}?adjusted=true`;
  const shown = redactUrl(url);
  const hide = (text: string): string => text.replaceAll(options.apiKey, '***');
  const json = await getJson(url, shown, hide, options);
  if (typeof json !== 'object' || json === null || !Array.isArray(json.results)) {
    throw new ServiceError('massive', `GET ${shown}: the answer has no results array`);
  }
  const out = parsePrevCloses(json, date, shown);
  if (out.closes.size === 0) {
    throw new ServiceError(
      'massive',
      `GET ${shown}: no usable close (${out.skipped} rows skipped)`,
    );
  }
  return out;
}

async function getJson(
  url: string,
  shown: string,
  hide: (text: string) => string,
  options: PrevCloseOptions,
): Promise<{ results?: unknown } | null> {
  const get = options.fetch ?? globalThis.fetch;
  try {
    const response = await get(url, {
      headers: { authorization: `Bearer ${options.apiKey}`, accept: 'application/json' },
      signal: AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS),
    });
    const text = await response.text();
    if (!response.ok) {
      const excerpt = hide(text.slice(0, BODY_EXCERPT_CHARS)).replace(/\s+/g, ' ').trim();
      const status = `${response.status} ${response.statusText}`.trim();
      throw new ServiceError('massive', `GET ${shown} answered HTTP ${status}: ${excerpt}`);
    }
    return JSON.parse(text) as { results?: unknown } | null;
  } catch (error) {
    if (error instanceof ServiceError) throw error;
    const reason = error instanceof Error ? error.message : String(error);
    // No `cause`: a fetch failure's cause could carry the request, and with it the key.
    throw new ServiceError('massive', `GET ${shown} failed: ${hide(reason)}`);
  }
}

/**
 * Parses previous closes from JSON: either a Massive grouped-daily response
 * (`{"results":[{"T":"AAPL","c":190.5,…},…]}`) or a plain `{"SYM": close}` object (the
 * recording metadata's `prevClose`). Bad rows are skipped and counted; a value of any other
 * shape throws {@link ConfigError}.
 */
export function parsePrevCloses(json: unknown, date: string, source: string): PrevCloses {
  assertDate(date);
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ConfigError(
      'prevClose',
      `${source}: expected a grouped-daily response or a {"SYM": close} object`,
    );
  }
  const out: PrevCloses = { date, source, closes: new Map(), skipped: 0 };
  const add = (sym: unknown, close: unknown): void => {
    if (typeof sym === 'string' && isValidSymbol(sym) && isPrice(close)) out.closes.set(sym, close);
    else out.skipped++;
  };
  const { results } = json as { results?: unknown };
  if ('results' in json || 'resultsCount' in json) {
    for (const row of Array.isArray(results) ? (results as unknown[]) : []) {
      const bar =
        typeof row === 'object' && row !== null ? (row as { T?: unknown; c?: unknown }) : {};
      add(bar.T, bar.c);
    }
  } else {
    for (const [sym, close] of Object.entries(json)) add(sym, close);
  }
  return out;
}

function isPrice(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value > 0;
}
