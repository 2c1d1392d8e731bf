import { Option } from 'commander';
import express, { type Express } from 'express';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { integer } from './options.ts';

/** What the HTTP endpoints ask the server. */
export interface HealthSource {
  /** Ready to do its job: every dependency usable, and not shutting down. */
  ready(): boolean;
  /** Why not ready, one line (e.g. `massive backoff (closed 1006), redis reconnecting`). */
  reason?(): string;
  /** The rich JSON of `/health`: `status` (`ok` exactly when ready), `dependencies`, counters. */
  health(): Record<string, unknown>;
  /** Answers `/metrics` (the process's OpenTelemetry Prometheus exporter); absent: no route. */
  metrics?: ((request: IncomingMessage, response: ServerResponse) => void) | undefined;
}

/** Where a server answers `/health`, `/healthz`, `/readyz` and `/metrics`. */
export interface AdminAddress {
  host: string;
  /** 0: any free port. */
  port: number;
}

/** Flags of {@link adminOptions}. */
export interface AdminFlags {
  adminHost: string;
  adminPort?: number;
}

/**
 * `--admin-host`, `--admin-port` with env twins `<PREFIX>_ADMIN_HOST`, `<PREFIX>_ADMIN_PORT`:
 * the health endpoints and `/metrics` on a port of their own, away from the traders'.
 */
export function adminOptions(prefix: 'MDP' | 'FEED'): Option[] {
  return [
    new Option('--admin-host <host>', 'bind address of the admin port')
      .env(`${prefix}_ADMIN_HOST`)
      .default('127.0.0.1'),
    new Option(
      '--admin-port <port>',
      'serve /health, /healthz, /readyz and /metrics on this port (0: any free port) instead of the HTTP port, which then serves only the page and /ws',
    )
      .env(`${prefix}_ADMIN_PORT`)
      .argParser(integer),
  ];
}

/** The admin address the flags ask for, if any. */
export function parseAdminFlags(flags: AdminFlags): AdminAddress | undefined {
  return flags.adminPort === undefined
    ? undefined
    : { host: flags.adminHost, port: flags.adminPort };
}

/**
 * An Express app. With a source, it serves the health endpoints: `/healthz` (alive), `/readyz`
 * (200 `ready`, or 503 `not ready: <reason>`), `/health` (JSON; 503 unless `status` is `ok`), and
 * `/metrics` (Prometheus) when the source has them. Without one, it is bare (a trader port whose
 * health is served on an admin port).
 */
export function createHttpApp(source?: HealthSource): Express {
  const app = express();
  app.disable('x-powered-by');
  if (source === undefined) return app;
  app.get('/healthz', (_req, res) => {
    res.type('text/plain').send('ok\n');
  });
  app.get('/readyz', (_req, res) => {
    const ready = source.ready();
    const reason = ready ? '' : (source.reason?.() ?? '');
    res
      .status(ready ? 200 : 503)
      .type('text/plain')
      .send(ready ? 'ready\n' : `not ready${reason === '' ? '' : `: ${reason}`}\n`);
  });
  const { metrics } = source;
  if (metrics !== undefined) app.get('/metrics', (req, res) => metrics(req, res));
  app.get('/health', (_req, res) => {
    const body = source.health();
    res.status(body['status'] === 'ok' ? 200 : 503).json(body);
  });
  return app;
}

/** Listens on `host:port` (0 for any free port); resolves with the server once listening. */
export function listen(app: Express, host: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = app.listen(port, host);
    server.once('listening', () => resolve(server));
    server.once('error', reject);
  });
}

/** Closes `server` (if any), resolving once it has. */
export function closeServer(server: Server | undefined): Promise<void> {
  return new Promise((resolve) =>
    server === undefined ? resolve() : server.close(() => resolve()),
  );
}
