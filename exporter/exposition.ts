import type { FamilyInfo } from './plan.ts';

/** The content type of the Prometheus text exposition format. */
export const EXPOSITION_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** One series' sample. */
export interface Sample {
  /** Label pairs in output order. */
  labels: readonly (readonly [string, string])[];
  value: number;
  /** Milliseconds since the epoch (json_exporter's `epochTimestamp`). */
  timestampMs?: number | undefined;
}

/** A metric family with its samples. */
export interface Family extends FamilyInfo {
  samples: Sample[];
}

/**
 * Renders families in the Prometheus text format 0.0.4: each family's HELP and TYPE once, its
 * samples together; families without samples are left out.
 */
export function formatExposition(families: Iterable<Family>): string {
  let out = '';
  for (const family of families) {
    if (family.samples.length === 0) continue;
    out += `# HELP ${family.name} ${escapeHelp(family.help)}\n# TYPE ${family.name} ${family.type}\n`;
    for (const sample of family.samples) out += formatSample(family.name, sample);
  }
  return out;
}

function formatSample(name: string, sample: Sample): string {
  const labels =
    sample.labels.length === 0
      ? ''
      : `{${sample.labels.map(([k, v]) => `${k}="${escapeLabelValue(v)}"`).join(',')}}`;
  const timestamp = sample.timestampMs === undefined ? '' : ` ${sample.timestampMs}`;
  return `${name}${labels} ${formatValue(sample.value)}${timestamp}\n`;
}

/** A sample value as the format spells it (`NaN`, `+Inf`, `-Inf`, or the number). */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

/** Escapes a label value: backslash, double quote and line feed. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Escapes HELP text: backslash and line feed. */
export function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}
