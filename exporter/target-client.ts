import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Agent, interceptors, request, type Dispatcher } from 'undici';
import type { HttpClientConfig, ModuleConfig } from './config.ts';

/** What one fetch of a target returned. */
export interface TargetResponse {
  status: number;
  /** The status is one the module accepts (`valid_status_codes`, else 2xx). */
  accepted: boolean;
  /** The body, read only when the status is accepted. */
  body: Buffer | undefined;
}

/** Limits of one fetch. */
export interface FetchLimits {
  timeoutMs: number;
  /** A longer body fails the probe instead of filling memory. */
  maxBodyBytes: number;
}

/** Fetches a module's targets with its headers, authentication, TLS settings and body. */
export interface TargetClient {
  /** Resolves with the response; rejects on network errors, timeouts and oversized bodies. */
  fetch(target: URL, limits: FetchLimits): Promise<TargetResponse>;
  /** Closes the connection pool; idempotent. */
  close(): Promise<void>;
}

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
  const accepts = (status: number): boolean =>
    module.valid_status_codes === undefined
      ? status >= 200 && status < 300
      : module.valid_status_codes.includes(status);
  let closed: Promise<void> | undefined;
  return {
    async fetch(target, limits) {
      const response = await request(target, {
        dispatcher,
        method: module.body === undefined ? 'GET' : 'POST',
        headers,
        body: module.body?.content,
        signal: AbortSignal.timeout(limits.timeoutMs),
      });
      if (!accepts(response.statusCode)) {
        // The body is not needed: read a little (keeping the connection) or drop it.
        await response.body.dump({ limit: 64 * 1024 }).catch(() => undefined);
        return { status: response.statusCode, accepted: false, body: undefined };
      }
      const body = await readBounded(response.body, limits.maxBodyBytes);
      return { status: response.statusCode, accepted: true, body };
    },
    close: () => (closed ??= dispatcher.close()),
  };
}

/** A connection pool with the module's TLS settings, following redirects unless told not to. */
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
  return http.follow_redirects
    ? agent.compose(interceptors.redirect({ maxRedirections: 10 }))
    : agent;
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

async function readBounded(body: AsyncIterable<Buffer>, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of body) {
    length += chunk.length;
    if (length > maxBytes) throw new Error(`response body larger than ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, length);
}
