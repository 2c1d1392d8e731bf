import express, { type Express } from 'express';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';

/** What the HTTP endpoints ask the server. */
export interface HealthSource {
  /** Ready to serve: connected and not shutting down. */
  ready(): boolean;
  /** The rich JSON of `/health`. */
  health(): Record<string, unknown>;
  /** Answers `/metrics` (the process's OpenTelemetry Prometheus exporter); absent: no route. */
  metrics?: ((request: IncomingMessage, response: ServerResponse) => void) | undefined;
}

/**
 * A server's HTTP endpoints: `/healthz` (alive), `/readyz` (ready), `/health` (JSON), and
 * `/metrics` (Prometheus) when the source has them.
 */
export function createHttpApp(source: HealthSource): Express {
  const app = express();
  app.disable('x-powered-by');
  app.get('/healthz', (_req, res) => {
    res.type('text/plain').send('ok\n');
  });
  app.get('/readyz', (_req, res) => {
    const ready = source.ready();
    res
      .status(ready ? 200 : 503)
      .type('text/plain')
      .send(ready ? 'ready\n' : 'not ready\n');
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
