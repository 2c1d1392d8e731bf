import { collectSamples, type Collected } from './collect.ts';
import { formatExposition, type Family } from './exposition.ts';
import type { ModulePlan } from './plan.ts';
import type { FetchLimits, TargetClient } from './target-client.ts';
import { SKIP_REASONS } from './values.ts';

/** A module ready to probe: its compiled metrics and its HTTP client. */
export interface ProbeModule {
  name: string;
  plan: ModulePlan;
  client: TargetClient;
}

/** The outcome of one probe. */
export interface ProbeResult {
  /** The exposition: the module's families, then the `probe_*` families. */
  text: string;
  success: boolean;
  /** Why the probe failed (no document), when it did. */
  error: string | undefined;
  /** What the metrics made of the document; absent when there was none. */
  collected: Collected | undefined;
}

/**
 * Fetches `target`, parses its JSON once and evaluates every metric of the module. A failed
 * fetch or an unparsable body is a result (`probe_success 0`), never a thrown error.
 */
export async function runProbe(
  module: ProbeModule,
  target: URL,
  limits: FetchLimits,
): Promise<ProbeResult> {
  const startedAt = performance.now();
  let status = 0;
  let collected: Collected | undefined;
  let error: string | undefined;
  try {
    const response = await module.client.fetch(target, limits);
    status = response.status;
    if (response.body === undefined) error = `status ${response.status} is not accepted`;
    else collected = collectSamples(module.plan, parseJson(response.body));
  } catch (cause) {
    error = describe(cause);
  }
  const seconds = (performance.now() - startedAt) / 1000;
  const families: Family[] = [
    ...(collected?.families ?? []),
    ...probeFamilies(collected, error === undefined, status, seconds),
  ];
  return { text: formatExposition(families), success: error === undefined, error, collected };
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (cause) {
    throw new Error(`the body is not JSON: ${(cause as Error).message}`, { cause });
  }
}

function describe(cause: unknown): string {
  if (!(cause instanceof Error)) return String(cause);
  if (cause.name === 'TimeoutError') return 'timed out';
  const code = (cause as { code?: unknown }).code;
  const inner = cause.cause instanceof Error ? `: ${cause.cause.message}` : '';
  return `${typeof code === 'string' ? `${code}: ` : ''}${cause.message}${inner}`;
}

function probeFamilies(
  collected: Collected | undefined,
  success: boolean,
  status: number,
  seconds: number,
): Family[] {
  const gauge = (name: string, help: string, value: number): Family => ({
    name,
    help,
    type: 'gauge',
    samples: [{ labels: [], value }],
  });
  return [
    gauge(
      'probe_success',
      'Whether the target answered an accepted status with JSON (1) or not (0).',
      success ? 1 : 0,
    ),
    gauge('probe_duration_seconds', 'Time the probe took: fetch, parse and evaluation.', seconds),
    gauge('probe_http_status_code', 'HTTP status of the target response (0: none).', status),
    gauge(
      'probe_duplicate_series',
      'Series this probe produced more than once (same name and labels); all but the first dropped.',
      collected?.duplicates ?? 0,
    ),
    {
      name: 'probe_skipped_values',
      help: 'Values this probe could not export, by reason.',
      type: 'gauge',
      samples: SKIP_REASONS.map((reason) => ({
        labels: [['reason', reason]],
        value: collected?.skipped[reason] ?? 0,
      })),
    },
  ];
}
