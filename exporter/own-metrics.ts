import type { Counter } from '@opentelemetry/api';
import { openbellMeter } from '../core/index.ts';
import { PROBE_FAILURE_REASONS } from './errors.ts';
import { formatExposition, type Family } from './exposition.ts';
import type { ProbeResult } from './probe.ts';

/** Series reasons counted by `openbell_exporter_dropped_series_total`. */
export const DROPPED_SERIES_REASONS = ['label_value_too_long', 'duplicate'] as const;

type Labels = readonly (readonly [string, string])[];

/** One counter with labels, kept for the built-in `/metrics` and mirrored to OpenTelemetry. */
class LabelledCounter {
  readonly name: string;
  readonly help: string;
  readonly #values = new Map<string, { labels: Labels; value: number }>();
  readonly #otel: Counter;

  constructor(name: string, help: string) {
    this.name = name;
    this.help = help;
    // OpenTelemetry's Prometheus exporter adds the `_total` itself.
    this.#otel = openbellMeter().createCounter(name.replace(/_total$/, ''), { description: help });
  }

  add(labels: Labels, value: number): void {
    const key = labels.map(([, v]) => v).join('\u0000');
    const entry = this.#values.get(key) ?? { labels, value: 0 };
    entry.value += value;
    this.#values.set(key, entry);
    this.#otel.add(value, Object.fromEntries(labels));
  }

  family(): Family {
    return {
      name: this.name,
      help: this.help,
      type: 'counter',
      samples: [...this.#values.values()],
    };
  }
}

/**
 * The exporter's own counters: probes by result, failed probes by reason, dropped series by
 * reason. Each module's reasons start at 0, so a rate over them exists before the first failure.
 */
export class ExporterCounters {
  readonly #probes = new LabelledCounter(
    'openbell_exporter_probes_total',
    'Probes answered, by module and result (success: the target gave a JSON document within the limits).',
  );
  readonly #failures = new LabelledCounter(
    'openbell_exporter_probe_failures_total',
    'Probes that failed, by module and reason.',
  );
  readonly #dropped = new LabelledCounter(
    'openbell_exporter_dropped_series_total',
    'Series probes dropped and answered without, by module and reason.',
  );

  constructor(modules: Iterable<string>) {
    for (const module of modules) {
      for (const reason of PROBE_FAILURE_REASONS)
        this.#failures.add([pair('module', module), pair('reason', reason)], 0);
      for (const reason of DROPPED_SERIES_REASONS)
        this.#dropped.add([pair('module', module), pair('reason', reason)], 0);
    }
  }

  /** Counts one probe's outcome. */
  record(module: string, result: ProbeResult): void {
    const by = (name: string, value: string): Labels => [pair('module', module), pair(name, value)];
    this.#probes.add(by('result', result.success ? 'success' : 'failure'), 1);
    if (result.failure !== undefined) this.#failures.add(by('reason', result.failure.reason), 1);
    const collected = result.collected;
    if (collected === undefined) return;
    const tooLong = collected.skipped.label_value_too_long;
    if (tooLong > 0) this.#dropped.add(by('reason', 'label_value_too_long'), tooLong);
    if (collected.duplicates > 0)
      this.#dropped.add(by('reason', 'duplicate'), collected.duplicates);
  }

  /** The counters in the text format, for the built-in `/metrics`. */
  format(): string {
    return formatExposition([
      this.#probes.family(),
      this.#failures.family(),
      this.#dropped.family(),
    ]);
  }
}

function pair(name: string, value: string): readonly [string, string] {
  return [name, value];
}
