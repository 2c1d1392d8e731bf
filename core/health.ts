import type { Meter } from '@opentelemetry/api';
import type { Logger } from 'pino';
import {
  observableCounter as counter,
  observableGauge as gauge,
  observeBatch as observe,
} from './instruments.ts';
import type { MassiveClient } from './massive-client.ts';

/**
 * One dependency of a process as `/health` reports it under `dependencies`: the Massive feed,
 * RabbitMQ, Redis, and an analyzer's own board applies.
 */
export interface DependencyHealth {
  /** Whether the process can do its job as far as this dependency goes. */
  ok: boolean;
  /**
   * A short state: `streaming`, `backoff`, `cooldown`, `failed` (massive); `connected`,
   * `disconnected` (rabbitmq); `ready`, `connecting`, `reconnecting`, `ping_timeout`,
   * `ping_failed` (redis); `ok`, `failing`, `stuck` (applies).
   */
  state: string;
  /** What went wrong, in a few words, when something did (never a secret). */
  detail?: string;
  /** Epoch ms since which `state` has held, as the process saw it. */
  sinceMs?: number;
}

/** A dependency's state now; {@link HealthMonitor} adds `sinceMs`. */
export type DependencyCheck = () => Omit<DependencyHealth, 'sinceMs'>;

/** `/health`'s `status`: `ok` exactly when `/readyz` answers 200. */
export type HealthStatus = 'ok' | 'degraded' | 'stopping';

/** Options of {@link createHealthMonitor}. */
export interface HealthMonitorOptions {
  /** The process's dependencies by name (`massive`, `rabbitmq`, `redis`, `applies`). */
  checks: Record<string, DependencyCheck>;
  log: Logger;
  /** How often the checks run between requests, to log changes and keep their history. @default 1000 */
  intervalMs?: number;
  /** Clock, epoch ms. @default Date.now */
  now?: () => number;
}

/**
 * Whether a process can do its job: it runs its dependency checks on every question (they read
 * fields, so `/readyz` costs nothing measurable) and once a second, and logs each dependency
 * going away and coming back once.
 */
export interface HealthMonitor {
  /** Starts the periodic checks; idempotent. */
  start(): void;
  /** Stops them; idempotent. */
  close(): void;
  /** Every dependency, checked now. */
  dependencies(): Record<string, DependencyHealth>;
  /** True when every dependency is ok. */
  ok(): boolean;
  /** `stopping` while shutting down, else `ok` or `degraded`. */
  status(stopping: boolean): HealthStatus;
  /** The dependencies that are not ok, one line: `massive backoff (closed 1006), redis reconnecting`. */
  reason(): string;
}

interface Seen {
  state: string;
  ok: boolean;
  sinceMs: number;
  everOk: boolean;
}

/** Creates a {@link HealthMonitor} over `checks`. */
export function createHealthMonitor(options: HealthMonitorOptions): HealthMonitor {
  const { checks, log } = options;
  const now = options.now ?? Date.now;
  const intervalMs = options.intervalMs ?? 1000;
  const seen = new Map<string, Seen>();
  let timer: NodeJS.Timeout | undefined;

  const evaluate = (name: string, check: DependencyCheck): DependencyHealth => {
    let result: Omit<DependencyHealth, 'sinceMs'>;
    try {
      result = check();
    } catch (error) {
      result = { ok: false, state: 'error', detail: String(error) };
    }
    const at = now();
    const before = seen.get(name);
    if (before === undefined || before.state !== result.state || before.ok !== result.ok) {
      const everOk = (before?.everOk ?? false) || result.ok;
      seen.set(name, { state: result.state, ok: result.ok, sinceMs: at, everOk });
      // Changes of ok only, after the dependency was up once: a start is not an outage.
      if (before !== undefined && before.ok !== result.ok && before.everOk) {
        const fields = { dependency: name, state: result.state, detail: result.detail };
        if (result.ok) log.info({ ...fields, downMs: at - before.sinceMs }, 'dependency back');
        else log.warn(fields, 'dependency unavailable');
      }
    }
    return { ...result, sinceMs: seen.get(name)!.sinceMs };
  };
  const dependencies = (): Record<string, DependencyHealth> =>
    Object.fromEntries(
      Object.entries(checks).map(([name, check]) => [name, evaluate(name, check)]),
    );
  const ok = (): boolean => Object.values(dependencies()).every((d) => d.ok);

  return {
    start() {
      timer ??= setInterval(dependencies, intervalMs).unref();
    },
    close() {
      clearInterval(timer);
    },
    dependencies,
    ok,
    status: (stopping) => (stopping ? 'stopping' : ok() ? 'ok' : 'degraded'),
    reason: () =>
      Object.entries(dependencies())
        .filter(([, d]) => !d.ok)
        .map(([name, d]) => `${name} ${d.state}${d.detail === undefined ? '' : ` (${d.detail})`}`)
        .join(', '),
  };
}

/** The counters {@link createApplyCheck} reads. */
export interface ApplyCounts {
  /** Batches applied (a monotonic count). */
  applied: number;
  /** Failed applies (a monotonic count). */
  failed: number;
  /** Batches held and not yet applied (work waiting). */
  held: number;
}

/** Options of {@link createApplyCheck}. */
export interface ApplyCheckOptions {
  /** Reads the analyzer's counters (e.g. `stats.batches`, `stats.applyErrors`, `consumer.stats.inFlight`). */
  read(): ApplyCounts;
  /** Work held this long with no apply succeeding makes the check fail. @default 10000 */
  staleMs?: number;
  /** Clock, epoch ms. @default Date.now */
  now?: () => number;
}

/**
 * A check that fails while an analyzer holds work and no apply has succeeded for `staleMs`:
 * applies keep failing (`failing`), or hang (`stuck`). An idle analyzer is fine. Reads the
 * counters at each check (every second from the monitor), so applies cost nothing extra.
 */
export function createApplyCheck(options: ApplyCheckOptions): DependencyCheck {
  const staleMs = options.staleMs ?? 10_000;
  const now = options.now ?? Date.now;
  let applied: number | undefined;
  let failedAtSuccess = 0;
  let goodAtMs = now();
  return () => {
    const counts = options.read();
    const at = now();
    if (counts.applied !== applied) {
      applied = counts.applied;
      failedAtSuccess = counts.failed;
      goodAtMs = at;
    } else if (counts.held === 0) goodAtMs = at;
    const failed = counts.failed - failedAtSuccess;
    if (at - goodAtMs < staleMs) return { ok: true, state: 'ok' };
    const seconds = Math.round((at - goodAtMs) / 1000);
    return {
      ok: false,
      state: failed > 0 ? 'failing' : 'stuck',
      detail: `no apply succeeded for ${seconds} s with ${counts.held} batches held; ${failed} failed since the last success`,
    };
  };
}

/** What {@link observeHealth} reads. */
export interface HealthParts {
  monitor: Pick<HealthMonitor, 'dependencies'>;
  /** Whether `/readyz` answers 200. */
  ready(): boolean;
  /** The mdp's Massive client, for its stall count. */
  massive?: Pick<MassiveClient, 'stats'> | undefined;
}

/**
 * Readiness (`openbell_ready`), each dependency (`openbell_dependency_up{dependency}`), and, in
 * the mdp, the upstream stalls (`openbell_massive_stalls_total`), read at scrape time.
 */
export function observeHealth(meter: Meter, parts: HealthParts): () => void {
  const m = {
    ready: gauge(meter, 'openbell_ready', '1 while /readyz answers 200'),
    up: gauge(meter, 'openbell_dependency_up', '1 while a dependency is usable, by dependency'),
    ...(parts.massive === undefined
      ? {}
      : {
          stalls: counter(
            meter,
            'openbell_massive_stalls',
            'Massive connections dropped for carrying no data while the market was open',
          ),
        }),
  };
  return observe(meter, Object.values(m), (o) => {
    o.observe(m.ready, parts.ready() ? 1 : 0);
    for (const [dependency, health] of Object.entries(parts.monitor.dependencies()))
      o.observe(m.up, health.ok ? 1 : 0, { dependency });
    if (m.stalls !== undefined && parts.massive !== undefined)
      o.observe(m.stalls, parts.massive.stats.stalls);
  });
}
