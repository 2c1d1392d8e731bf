import { collectSamples, type Collected } from './collect.ts';
import { ProbeError, type ProbeFailureReason } from './errors.ts';
import { formatExposition, type Family } from './exposition.ts';
import type { ProbeLimits } from './limits.ts';
import type { ModulePlan } from './plan.ts';
import type { TargetClient } from './target-client.ts';
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
  /** Why the probe failed (no module metrics), when it did. */
  failure: ProbeFailure | undefined;
  /** What the metrics made of the document; absent when there was none. */
  collected: Collected | undefined;
}

/** Why a probe failed: the reason label and a message for the log. */
export interface ProbeFailure {
  reason: ProbeFailureReason;
  message: string;
}

/**
 * Fetches `target`, parses its JSON once and evaluates every metric of the module within
 * `limits`. A failed fetch, an unparsable body or a limit crossed is a result (`probe_success 0`,
 * no module metrics), never a thrown error.
 */
export async function runProbe(
  module: ProbeModule,
  target: URL,
  limits: ProbeLimits,
): Promise<ProbeResult> {
  const startedAt = performance.now();
  let status = 0;
  let collected: Collected | undefined;
  let failure: ProbeFailure | undefined;
  try {
    const response = await module.client.fetch(target, limits);
    status = response.status;
    if (response.body === undefined)
      failure = { reason: 'status', message: `status ${response.status} is not accepted` };
    else collected = collectSamples(module.plan, parseJson(response.body), limits);
  } catch (cause) {
    failure = describe(cause, limits);
    if (cause instanceof ProbeError && cause.status !== 0) status = cause.status;
  }
  const seconds = (performance.now() - startedAt) / 1000;
  const success = failure === undefined;
  const families: Family[] = [
    ...(collected?.families ?? []),
    ...probeFamilies(collected, success, status, seconds),
  ];
  return { text: formatExposition(families), success, failure, collected };
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (cause) {
    throw new ProbeError('not_json', `the body is not JSON: ${(cause as Error).message}`, {
      cause,
    });
  }
}

function describe(cause: unknown, limits: ProbeLimits): ProbeFailure {
  if (cause instanceof ProbeError) return { reason: cause.code, message: cause.message };
  if (!(cause instanceof Error)) return { reason: 'connection', message: String(cause) };
  if (cause.name === 'TimeoutError')
    return { reason: 'timeout', message: `timed out after ${limits.timeoutMs} ms` };
  const code = (cause as { code?: unknown }).code;
  const inner = cause.cause instanceof Error ? `: ${cause.cause.message}` : '';
  const message = `${typeof code === 'string' ? `${code}: ` : ''}${cause.message}${inner}`;
  return { reason: 'connection', message };
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
      'Whether the target answered an accepted status with JSON, within the limits (1), or not (0).',
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
