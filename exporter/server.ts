import express, { type Express, type Request, type RequestHandler } from 'express';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { listen } from '../cli/http.ts';
import { redactUrl } from '../core/index.ts';
import type { ExporterConfig } from './config.ts';
import { EXPOSITION_CONTENT_TYPE } from './exposition.ts';
import { parseProbeLimits, type ProbeLimits } from './limits.ts';
import { ExporterCounters } from './own-metrics.ts';
import { compileModule } from './plan.ts';
import { runProbe, type ProbeModule, type ProbeResult } from './probe.ts';
import { createTargetClient } from './target-client.ts';

/** Options of {@link createExporter}. */
export interface ExporterOptions {
  config: ExporterConfig;
  /** Folder relative file paths of the config start from. */
  baseDir: string;
  host: string;
  /** 0: any free port. */
  port: number;
  log: Logger;
  /** Longest fetch of a target; a Prometheus scrape timeout (header) shortens it. @default 10000 */
  timeoutMs?: number;
  /** Longest body read from a target (read as a stream, cut off past it). @default 16 MiB */
  maxBodyBytes?: number;
  /** Redirects a probe follows at most, each checked against `allowedTargets`. @default 10 */
  maxRedirects?: number;
  /** Series one probe may produce (and items one metric may select). @default 10000 */
  maxSeries?: number;
  /** Series with a longer label value (UTF-8 bytes) are dropped and counted. @default 1024 */
  maxLabelValueBytes?: number;
  /**
   * Regular expressions, each matched against the whole target URL, replacing every module's
   * `allowedTargets` (e.g. a deployment's host names for the bundled loopback-only module).
   * @default each module's own `allowedTargets`
   */
  allowedTargets?: string[];
  /** Serves `/metrics` instead of the built-in handler (the process's OpenTelemetry exporter). */
  metricsHandler?: RequestHandler;
}

/** The JSON exporter's HTTP server: `/probe`, `/metrics`, `/healthz`. */
export interface Exporter {
  /** Listens; idempotent. */
  start(): Promise<void>;
  /** Stops listening and closes the modules' connection pools; idempotent. */
  close(): Promise<void>;
  /** The port actually bound (after start). */
  readonly port: number;
  /** The HTTP server (after start). */
  readonly server: Server | undefined;
  readonly app: Express;
}

/** Distinct problems and failing targets remembered for logging once; forgotten past this. */
const MEMORY_LIMIT = 10_000;

/**
 * Creates the exporter; every module's HTTP client is built now, so a credential or CA file
 * that cannot be read, or a limit out of range, fails here, naming its key. Nothing listens
 * before `start()`.
 */
export function createExporter(options: ExporterOptions): Exporter {
  const { log } = options;
  const limits = parseProbeLimits(options);
  const modules = new Map<string, TimedModule>();
  for (const [name, config] of Object.entries(options.config.modules)) {
    const allowedTargets = options.allowedTargets ?? config.allowedTargets;
    modules.set(name, {
      name,
      plan: compileModule(config),
      client: createTargetClient(name, { ...config, allowedTargets }, options.baseDir),
      timeoutMs: config.timeoutMs,
    });
  }
  const counters = new ExporterCounters(modules.keys());
  const app = express();
  app.disable('x-powered-by');
  app.get('/healthz', (_req, res) => {
    res.type('text/plain').send('ok\n');
  });
  const ownMetrics: RequestHandler = (_req, res) => {
    res.type(EXPOSITION_CONTENT_TYPE).send(counters.format());
  };
  app.get('/metrics', options.metricsHandler ?? ownMetrics);
  app.get('/probe', probeHandler(modules, options, limits, counters));

  let server: Server | undefined;
  let started: Promise<void> | undefined;
  let closed: Promise<void> | undefined;
  return {
    app,
    start: () =>
      (started ??= (async () => {
        server = await listen(app, options.host, options.port);
        const port = (server.address() as AddressInfo).port;
        log.info({ host: options.host, port, modules: [...modules.keys()] }, 'exporter listening');
      })()),
    close: () =>
      (closed ??= (async () => {
        await started?.catch(() => undefined);
        await new Promise<void>((resolve) => {
          if (server === undefined) return resolve();
          server.close(() => resolve());
          server.closeIdleConnections();
        });
        await Promise.all([...modules.values()].map((m) => m.client.close()));
      })()),
    get port() {
      return server === undefined ? 0 : (server.address() as AddressInfo).port;
    },
    get server() {
      return server;
    },
  };
}

type TimedModule = ProbeModule & { timeoutMs: number | undefined };

/** `GET /probe?module=<m>&target=<url>`: 400 for a bad request, else the probe's exposition. */
function probeHandler(
  modules: ReadonlyMap<string, TimedModule>,
  options: ExporterOptions,
  limits: ProbeLimits,
  counters: ExporterCounters,
): RequestHandler {
  const report = createReporter(options.log);
  return async (req, res) => {
    const moduleName = queryParam(req, 'module') ?? 'default';
    const module = modules.get(moduleName);
    if (module === undefined) {
      const known = [...modules.keys()].join(', ');
      res.status(400).type('text/plain').send(`unknown module "${moduleName}" (known: ${known})\n`);
      return;
    }
    const target = parseTarget(queryParam(req, 'target'));
    if (typeof target === 'string') {
      res.status(400).type('text/plain').send(`${target}\n`);
      return;
    }
    if (!module.client.allows(target)) {
      res
        .status(403)
        .type('text/plain')
        .send(`target not allowed for module "${moduleName}" (its allowedTargets)\n`);
      return;
    }
    const timeoutMs = probeTimeoutMs(req, module.timeoutMs ?? limits.timeoutMs);
    const result = await runProbe(module, target, { ...limits, timeoutMs });
    counters.record(moduleName, result);
    report(moduleName, target, result);
    res.status(200).type(EXPOSITION_CONTENT_TYPE).send(result.text);
  };
}

function queryParam(req: Request, name: string): string | undefined {
  const value: unknown = req.query[name];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** The target URL, or what is wrong with it. */
function parseTarget(text: string | undefined): URL | string {
  if (text === undefined) return 'target: missing (expected ?target=<http(s) URL>)';
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return `target: not a URL: ${JSON.stringify(redactUrl(text))}`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return `target: expected http or https, got ${url.protocol}`;
  return url;
}

/** The fetch deadline: the configured one, shortened to fit inside Prometheus's scrape timeout. */
function probeTimeoutMs(req: Request, configuredMs: number): number {
  const header = Number(req.get('x-prometheus-scrape-timeout-seconds'));
  if (!Number.isFinite(header) || header <= 0) return configuredMs;
  // Leave half a second to evaluate and answer before Prometheus gives up on the scrape.
  return Math.max(100, Math.min(configuredMs, header * 1000 - 500));
}

/**
 * Logs at boundaries: a target that starts failing (warn; debug while it keeps failing), and
 * each distinct data problem (duplicate series, skipped values) once per process.
 */
function createReporter(log: Logger): (module: string, target: URL, result: ProbeResult) => void {
  const failing = new Set<string>();
  const problems = new Set<string>();
  return (module, target, result) => {
    const key = `${module} ${target.href}`;
    const where = { module, target: redactUrl(target.href) };
    const why = { reason: result.failure?.reason, err: result.failure?.message };
    if (result.success) {
      if (failing.delete(key)) log.info(where, 'probe recovered');
    } else if (failing.has(key)) log.debug({ ...where, ...why }, 'probe failed');
    else {
      if (failing.size >= MEMORY_LIMIT) failing.clear();
      failing.add(key);
      log.warn({ ...where, ...why }, 'probe failed');
    }
    for (const [id, problem] of result.collected?.problems ?? []) {
      if (problems.has(`${module}\u0000${id}`)) continue;
      if (problems.size >= MEMORY_LIMIT) problems.clear();
      problems.add(`${module}\u0000${id}`);
      log.warn(
        { ...where, ...problem },
        problem.problem === 'duplicate' ? 'duplicate series dropped' : 'values skipped',
      );
    }
  };
}
