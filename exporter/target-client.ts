import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Agent, request, type Dispatcher } from 'undici';
import { redactUrl } from '../core/index.ts';
import type { HttpClientConfig, ModuleConfig } from './config.ts';
import { ProbeError } from './errors.ts';
import type { ProbeLimits } from './limits.ts';

/** What one fetch of a target returned. */
export interface TargetResponse {
  status: number;
  /** The status is one the module accepts (`valid_status_codes`, else 2xx). */
  accepted: boolean;
  /** The body, read only when the status is accepted. */
  body: Buffer | undefined;
}

/** Limits of one fetch. */
export type FetchLimits = Pick<ProbeLimits, 'timeoutMs' | 'maxBodyBytes' | 'maxRedirects'>;

/** Fetches a module's targets with its headers, authentication, TLS settings and body. */
export interface TargetClient {
  /**
   * Resolves with the response; rejects on network errors and timeouts, and with a
   * {@link ProbeError} for an oversized body or a redirect it will not follow.
   */
  fetch(target: URL, limits: FetchLimits): Promise<TargetResponse>;
  /** Whether the module may fetch `url` (its `allowedTargets`; any URL without them). */
  allows(url: URL): boolean;
  /** Closes the connection pool; idempotent. */
  close(): Promise<void>;
}

/** Statuses followed as redirects (those Go's client follows, as json_exporter does). */
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** Request headers never sent to an origin other than the probed target's. */
const CREDENTIAL_HEADERS = ['authorization', 'cookie', 'proxy-authorization'];
/** A body not needed (a redirect's, a refused status's) is read up to this to keep the socket. */
const DISCARD_LIMIT_BYTES = 64 * 1024;

/**
 * Creates the HTTP client of one module. Credential, CA and key files are read now (relative to
 * `baseDir`), so a missing file fails at start with its key path; rotate them with a restart.
 */
export function createTargetClient(
  name: string,
  module: ModuleConfig,
  baseDir: string,
): TargetClient {
  const http = module.http_client_config;
  const at = `modules.${name}.http_client_config`;
  const read = (file: string, key: string): string => {
    try {
      return readFileSync(resolve(baseDir, file), 'utf8');
    } catch (error) {
      throw new Error(`${at}.${key}: cannot read ${file}: ${(error as Error).message}`, {
        cause: error,
      });
    }
  };
  const headers: Record<string, string> = { accept: 'application/json' };
  for (const [key, value] of Object.entries(module.headers)) headers[key.toLowerCase()] = value;
  const authorization = authorizationHeader(http, read);
  if (authorization !== undefined) headers['authorization'] = authorization;
  const dispatcher = createDispatcher(http, read);
  const allowed = module.allowedTargets?.map((source) => new RegExp(`^(?:${source})$`));
  const context: FetchContext = {
    dispatcher,
    headers,
    body: module.body?.content,
    followRedirects: http.follow_redirects,
    accepts: (status) =>
      module.valid_status_codes === undefined
        ? status >= 200 && status < 300
        : module.valid_status_codes.includes(status),
    allows: (url) => allowed === undefined || allowed.some((pattern) => pattern.test(url.href)),
  };
  let closed: Promise<void> | undefined;
  return {
    fetch: (target, limits) => fetchTarget(context, target, limits),
    allows: context.allows,
    close: () => (closed ??= dispatcher.close()),
  };
}

/** What a module's fetches share. */
interface FetchContext {
  dispatcher: Dispatcher;
  /** Sent to the target's origin; other origins get them without credentials. */
  headers: Record<string, string>;
  /** The module's POST body; without it the fetch is a GET. */
  body: string | undefined;
  followRedirects: boolean;
  accepts: (status: number) => boolean;
  allows: (url: URL) => boolean;
}

/** Fetches `target`, following redirects one checked hop at a time. */
async function fetchTarget(
  context: FetchContext,
  target: URL,
  limits: FetchLimits,
): Promise<TargetResponse> {
  // One deadline for the whole chain, so redirects cannot stretch a probe.
  const signal = AbortSignal.timeout(limits.timeoutMs);
  let hop: Hop = {
    url: target,
    method: context.body === undefined ? 'GET' : 'POST',
    body: context.body,
    bodyDropped: false,
  };
  for (let redirects = 0; ; redirects++) {
    const sent =
      hop.url.origin === target.origin ? context.headers : withoutCredentials(context.headers);
    const response = await request(hop.url, {
      dispatcher: context.dispatcher,
      method: hop.method,
      headers: hop.bodyDropped ? withoutContentHeaders(sent) : sent,
      body: hop.body,
      signal,
    });
    const location = context.followRedirects ? redirectLocation(response) : undefined;
    if (location !== undefined) {
      await discard(response.body);
      const { maxRedirects } = limits;
      hop = nextHop(hop, response.statusCode, location, redirects, maxRedirects, context.allows);
      continue;
    }
    if (!context.accepts(response.statusCode)) {
      await discard(response.body);
      return { status: response.statusCode, accepted: false, body: undefined };
    }
    const body = await readBounded(response, limits.maxBodyBytes);
    return { status: response.statusCode, accepted: true, body };
  }
}

/** One request of a fetch: the target, then each redirect. */
interface Hop {
  url: URL;
  method: 'GET' | 'POST';
  body: string | undefined;
  /** A redirect turned the POST into a GET: the module's Content-* headers are not sent. */
  bodyDropped: boolean;
}

/** The Location of a redirect response, if it is one (a 3xx without Location is an answer). */
function redirectLocation(response: Dispatcher.ResponseData): string | string[] | undefined {
  return REDIRECTS.has(response.statusCode) ? response.headers['location'] : undefined;
}

/**
 * The request a redirect asks for, checked before anything is sent: the hop count, the URL's
 * scheme and the module's `allowedTargets`. A 303, or a 301/302 answering a POST, becomes a GET
 * without body, as browsers and Go's client do.
 */
function nextHop(
  hop: Hop,
  status: number,
  location: string | string[],
  redirects: number,
  maxRedirects: number,
  allows: (url: URL) => boolean,
): Hop {
  if (redirects >= maxRedirects)
    throw new ProbeError('too_many_redirects', `more than ${maxRedirects} redirects`, { status });
  if (typeof location !== 'string')
    throw new ProbeError('bad_redirect', `redirect ${status} with several Location headers`, {
      status,
    });
  let url: URL;
  try {
    url = new URL(location, hop.url);
  } catch (cause) {
    throw new ProbeError('bad_redirect', `redirect ${status} to a Location that is not a URL`, {
      cause,
      status,
    });
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new ProbeError('bad_redirect', `redirect ${status} to a ${url.protocol} URL`, { status });
  if (!allows(url))
    throw new ProbeError(
      'redirect_not_allowed',
      `redirect ${status} to ${redactUrl(url.href)}, which allowedTargets does not allow`,
      { status },
    );
  const get = status === 303 || (hop.method === 'POST' && (status === 301 || status === 302));
  return get ? { url, method: 'GET', body: undefined, bodyDropped: true } : { ...hop, url };
}

function withoutCredentials(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers).filter(([name]) => !CREDENTIAL_HEADERS.includes(name)),
  );
}

function withoutContentHeaders(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers).filter(([name]) => !name.startsWith('content-')),
  );
}

/** Reads a little of an unwanted body (to keep the connection) or drops it with the socket. */
async function discard(body: Dispatcher.ResponseData['body']): Promise<void> {
  // A body longer than the limit, or one that fails, closes its socket: nothing to report.
  await body.dump({ limit: DISCARD_LIMIT_BYTES }).catch(() => undefined);
}

/** A connection pool with the module's TLS settings; redirects are followed by `fetch`. */
function createDispatcher(
  http: HttpClientConfig,
  read: (file: string, key: string) => string,
): Dispatcher {
  const tls = http.tls_config;
  const agent = new Agent({
    connect: {
      ca: tls?.ca_file === undefined ? undefined : read(tls.ca_file, 'tls_config.ca_file'),
      cert: tls?.cert_file === undefined ? undefined : read(tls.cert_file, 'tls_config.cert_file'),
      key: tls?.key_file === undefined ? undefined : read(tls.key_file, 'tls_config.key_file'),
      servername: tls?.server_name,
      rejectUnauthorized: !(tls?.insecure_skip_verify ?? false),
      minVersion: tls?.min_version === undefined ? undefined : TLS_VERSIONS[tls.min_version],
    },
  });
  return agent;
}

const TLS_VERSIONS = {
  TLS10: 'TLSv1',
  TLS11: 'TLSv1.1',
  TLS12: 'TLSv1.2',
  TLS13: 'TLSv1.3',
} as const;

function authorizationHeader(
  http: HttpClientConfig,
  read: (file: string, key: string) => string,
): string | undefined {
  // A secret given inline wins over (or, as the config allows only one, stands for) its file.
  const secret = (value: string | undefined, file: string | undefined, key: string) =>
    value ?? (file === undefined ? undefined : read(file, key).trim());
  const basic = http.basic_auth;
  if (basic !== undefined) {
    const password = secret(basic.password, basic.password_file, 'basic_auth.password_file');
    return `Basic ${Buffer.from(`${basic.username}:${password ?? ''}`).toString('base64')}`;
  }
  const auth = http.authorization;
  if (auth !== undefined) {
    const credentials = secret(
      auth.credentials,
      auth.credentials_file,
      'authorization.credentials_file',
    );
    return `${auth.type} ${credentials ?? ''}`;
  }
  const token = secret(http.bearer_token, http.bearer_token_file, 'bearer_token_file');
  return token === undefined ? undefined : `Bearer ${token}`;
}

/**
 * Reads a body as a stream, failing as soon as it is known to be longer than `maxBytes`: from its
 * Content-Length before reading, else at the chunk that crosses the cap (the socket is dropped).
 */
async function readBounded(response: Dispatcher.ResponseData, maxBytes: number): Promise<Buffer> {
  const tooLarge = (): ProbeError =>
    new ProbeError('body_too_large', `response body larger than ${maxBytes} bytes`, {
      status: response.statusCode,
    });
  const declared = Number(response.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) {
    // Destroying emits the abort as an error no one else listens to: the probe reports it.
    response.body.on('error', () => undefined).destroy();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let length = 0;
  // Leaving the loop by the throw destroys the stream, which aborts the request.
  for await (const chunk of response.body as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > maxBytes) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, length);
}
