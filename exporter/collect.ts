import { ProbeError } from './errors.ts';
import type { Family, Sample } from './exposition.ts';
import type { ProbeLimits } from './limits.ts';
import { parseNumber, convertValue, SKIP_REASONS, type SkipReason } from './values.ts';
import { renderTemplate, selectValues } from './json-path.ts';
import type { MetricPlan, ModulePlan } from './plan.ts';

/** What a module's metrics made of one document. */
export interface Collected {
  /** Every family of the module, in config order, each with its samples (maybe none). */
  families: Family[];
  /** Values that produced no sample, by reason. */
  skipped: Record<SkipReason, number>;
  /** Series (name and labels) already produced in this probe, dropped. */
  duplicates: number;
  /** Distinct problems (`family` with a skip reason or `duplicate`) and how often they occurred. */
  problems: Map<string, { family: string; problem: SkipReason | 'duplicate'; count: number }>;
}

/** The limits {@link collectSamples} keeps. */
export type CollectLimits = Pick<ProbeLimits, 'maxSeries' | 'maxLabelValueBytes'>;

type Labels = [string, string][];

/**
 * Evaluates every metric of a module against one parsed document. Bad data is counted, never
 * thrown: values that are not numbers are skipped, duplicate series and series with a label
 * value longer than `maxLabelValueBytes` are dropped. Throws a {@link ProbeError}
 * (`too_many_series`) at the first series past `maxSeries`, or the first item past it that one
 * metric's path selects, so a huge document never has all its series built.
 */
export function collectSamples(
  plan: ModulePlan,
  document: unknown,
  limits: CollectLimits,
): Collected {
  const families = new Map<string, Family>();
  for (const info of plan.families.values()) families.set(info.name, { ...info, samples: [] });
  const out: Collected = {
    families: [...families.values()],
    skipped: Object.fromEntries(SKIP_REASONS.map((r) => [r, 0])) as Record<SkipReason, number>,
    duplicates: 0,
    problems: new Map(),
  };
  const seen = new Set<string>();
  let series = 0;
  const note = (family: string, problem: SkipReason | 'duplicate'): void => {
    const key = `${family}\u0000${problem}`;
    const entry = out.problems.get(key) ?? { family, problem, count: 0 };
    entry.count++;
    out.problems.set(key, entry);
  };
  const emit = (family: string, sample: Sample): void => {
    const key = seriesKey(family, sample.labels);
    if (seen.has(key)) {
      out.duplicates++;
      note(family, 'duplicate');
      return;
    }
    if (++series > limits.maxSeries)
      throw new ProbeError('too_many_series', `more than ${limits.maxSeries} series (maxSeries)`);
    seen.add(key);
    families.get(family)?.samples.push(sample);
  };
  const skip = (family: string, reason: SkipReason): void => {
    out.skipped[reason]++;
    note(family, reason);
  };
  for (const metric of plan.metrics) collectMetric(metric, document, limits, emit, skip);
  return out;
}

function collectMetric(
  metric: MetricPlan,
  document: unknown,
  limits: CollectLimits,
  emit: (family: string, sample: Sample) => void,
  skip: (family: string, reason: SkipReason) => void,
): void {
  // Past maxLabelValueBytes + 1 matches, the spaces joining them alone are too long.
  const labelMatches = limits.maxLabelValueBytes + 2;
  const item = (context: unknown, extra: Labels): void => {
    const labels: Labels = metric.labels.map((l) => [
      l.name,
      renderTemplate(l.template, context, labelMatches) ?? '',
    ]);
    labels.push(...extra);
    const tooLong = labels.some(([, v]) => Buffer.byteLength(v) > limits.maxLabelValueBytes);
    const timestampMs = readTimestamp(metric, context);
    for (const value of metric.values) {
      // Two matches are enough to know a value is ambiguous.
      const converted = convertValue(selectValues(value.template, context, 2), value.conversion);
      if (!converted.ok) {
        if (!(converted.reason === 'missing' && metric.allowMissing))
          skip(value.family, converted.reason);
      } else if (tooLong) skip(value.family, 'label_value_too_long');
      else emit(value.family, { labels, value: converted.value, timestampMs });
    }
  };
  if (metric.type === 'value') return item(document, []);
  let items = 0;
  const next = (): void => {
    if (++items > limits.maxSeries)
      throw new ProbeError(
        'too_many_series',
        `metric ${metric.name}: its path selects more than ${limits.maxSeries} items (maxSeries)`,
      );
  };
  const matches = selectValues(metric.path, document, limits.maxSeries + 1);
  if (matches.length === 0 && !metric.allowMissing)
    for (const value of metric.values) skip(value.family, 'missing');
  for (const match of matches) {
    if (metric.keyLabel === undefined) {
      next();
      item(match, []);
    } else if (isObject(match))
      for (const key of Object.keys(match)) {
        next();
        item(match[key], [[metric.keyLabel, key]]);
      }
    else if (!(match === null && metric.allowMissing))
      for (const value of metric.values) skip(value.family, 'not_an_object');
  }
}

function readTimestamp(metric: MetricPlan, context: unknown): number | undefined {
  if (metric.timestamp === undefined) return undefined;
  const found = selectValues(metric.timestamp, context, 2);
  const ms = found.length === 1 ? parseNumber(found[0]) : undefined;
  return ms === undefined || !Number.isFinite(ms) ? undefined : Math.trunc(ms);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** A series' identity: its name and its non-empty labels, sorted (an empty label is no label). */
function seriesKey(family: string, labels: readonly (readonly [string, string])[]): string {
  const pairs = labels
    .filter(([, v]) => v !== '')
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .sort();
  return `${family}{${pairs.join(',')}}`;
}
