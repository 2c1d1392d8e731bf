/**
 * Health and metrics endpoints suite for k6: RATE rounds a second of GET /healthz, /readyz,
 * /health (JSON) and, with WITH_METRICS=1, /metrics against the mdp at BASE_URL. Run it next to
 * the feed suite or a replay to see the endpoints stay fast and ready under load. How to run it:
 * loadtest/README.md.
 */
import { check } from 'k6';
import type { JSONValue } from 'k6';
import http from 'k6/http';
import type { RefinedResponse, ResponseType } from 'k6/http';
import type { Options } from 'k6/options';
import { env, envInt } from './k6-env.ts';

const config = {
  baseUrl: env('BASE_URL', 'http://127.0.0.1:8080').replace(/\/+$/, ''),
  /** /metrics is probed only when asked, for servers that do not serve it. */
  withMetrics: env('WITH_METRICS', '0') === '1',
  rate: envInt('RATE', 20, 1),
  duration: env('DURATION', '1m'),
};

/** An open model: rounds start at RATE a second however slow the server gets. */
export const options: Options = {
  scenarios: {
    endpoints: {
      executor: 'constant-arrival-rate',
      rate: config.rate,
      timeUnit: '1s',
      duration: config.duration,
      preAllocatedVUs: 5,
      maxVUs: 50,
    },
  },
  thresholds: {
    http_req_duration: ['p(95)<100'],
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
  },
};

type Response = RefinedResponse<ResponseType | undefined>;

function jsonAt(response: Response, path: string): JSONValue | undefined {
  try {
    return response.json(path);
  } catch {
    return undefined; // not JSON: every check reading a field of it fails
  }
}

function isObject(value: JSONValue | undefined): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function get(path: string): Response {
  return http.get(`${config.baseUrl}${path}`, { tags: { name: path } });
}

/** One round: each endpoint once, in order. */
export default function (): void {
  check(get('/healthz'), {
    '/healthz: 200 ok': (r) => r.status === 200 && r.body === 'ok\n',
  });
  check(get('/readyz'), {
    '/readyz: 200 ready': (r) => r.status === 200 && r.body === 'ready\n',
  });
  check(get('/health'), {
    '/health: 200': (r) => r.status === 200,
    '/health: status ok': (r) => jsonAt(r, 'status') === 'ok',
    '/health: uptimeSeconds is a number': (r) => typeof jsonAt(r, 'uptimeSeconds') === 'number',
    '/health: massive.state is a string': (r) => typeof jsonAt(r, 'massive.state') === 'string',
    '/health: listener and publisher stats': (r) =>
      isObject(jsonAt(r, 'listener')) && isObject(jsonAt(r, 'publisher')),
  });
  if (!config.withMetrics) return;
  check(get('/metrics'), {
    '/metrics: 200': (r) => r.status === 200,
    '/metrics: Prometheus text': (r) => (r.headers['Content-Type'] ?? '').startsWith('text/plain'),
    '/metrics: openbell_ series': (r) => typeof r.body === 'string' && r.body.includes('openbell_'),
  });
}
