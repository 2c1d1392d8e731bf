import { readFile } from 'node:fs/promises';

/** Kind of a metric as docs/METRICS.md declares it. */
export type MetricType = 'counter' | 'gauge' | 'histogram';

/** The metric catalogue: every name openbell exposes, with its type. */
export type MetricCatalogue = ReadonlyMap<string, MetricType>;

/** docs/METRICS.md, the catalogue dashboards and rules may use. */
export const METRICS_DOC = new URL('../docs/METRICS.md', import.meta.url);

/** Names from outside openbell's own catalogue that dashboards and rules may use. */
const FOREIGN_METRIC = /^(up|rabbitmq_\w+|probe_\w+|openbell_health_\w+)$/;

const HISTOGRAM_SERIES = /^(\w+)_(bucket|count|sum)$/;

/**
 * Parses the metric tables of docs/METRICS.md: every table row whose first cell is a backticked
 * name, with its type from the second cell.
 */
export function parseMetricCatalogue(markdown: string): MetricCatalogue {
  const catalogue = new Map<string, MetricType>();
  for (const line of markdown.split('\n')) {
    const cells = line.split('|').map((cell) => cell.trim());
    // A table row: | `name` | type | ... |, so cells[0] is the empty text before the first bar.
    const name = /^`([a-z_:][a-z0-9_:]*)`$/.exec(cells[1] ?? '')?.[1];
    const type = cells[2];
    if (name === undefined) continue;
    if (type !== 'counter' && type !== 'gauge' && type !== 'histogram') {
      throw new Error(`docs/METRICS.md: ${name} has an unknown type ${JSON.stringify(type)}`);
    }
    catalogue.set(name, type);
  }
  return catalogue;
}

/** Reads and parses docs/METRICS.md (or `file`). */
export async function readMetricCatalogue(
  file: URL | string = METRICS_DOC,
): Promise<MetricCatalogue> {
  return parseMetricCatalogue(await readFile(file, 'utf8'));
}

/** The catalogue metric a series name belongs to (`x_bucket` → `x` for a histogram `x`). */
export function catalogueName(catalogue: MetricCatalogue, series: string): string | undefined {
  if (catalogue.has(series)) return series;
  const base = HISTOGRAM_SERIES.exec(series)?.[1];
  return base !== undefined && catalogue.get(base) === 'histogram' ? base : undefined;
}

/** Whether a series name may appear in a query: in the catalogue, or an allowed foreign name. */
export function isKnownSeries(catalogue: MetricCatalogue, series: string): boolean {
  return catalogueName(catalogue, series) !== undefined || FOREIGN_METRIC.test(series);
}

/**
 * Whether a series only ever grows, so a query must take its `rate`, `increase` or `irate`: a
 * `_total` name, or a histogram's `_bucket`, `_count` or `_sum`.
 */
export function isCounterSeries(catalogue: MetricCatalogue, series: string): boolean {
  if (series.endsWith('_total') || series.endsWith('_bucket')) return true;
  if (catalogue.get(series) === 'counter') return true;
  const base = catalogueName(catalogue, series);
  return base !== undefined && base !== series && catalogue.get(base) === 'histogram';
}
