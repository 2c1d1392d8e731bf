import {
  metrics,
  type BatchObservableResult,
  type Histogram,
  type Meter,
  type Observable,
} from '@opentelemetry/api';

/** Duration histogram buckets in seconds: 100 µs to 30 s (docs/METRICS.md). */
export const DURATION_BUCKETS_SECONDS: readonly number[] = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
  30,
];

/** The instrumentation scope every openbell component records under. */
export const METER_NAME = 'openbell';

/**
 * The meter components create their instruments from. Without telemetry (tests, library use) it
 * is a no-op and costs nothing. The metrics API has no proxy meter: an instrument created before
 * the process starts its telemetry (core/telemetry.ts) stays a no-op for good, so every main
 * starts telemetry first and components create their instruments when they are created.
 */
export function openbellMeter(): Meter {
  return metrics.getMeter(METER_NAME);
}

/** A `_seconds` histogram with openbell's buckets. */
export function createDurationHistogram(
  meter: Meter,
  name: string,
  description: string,
): Histogram {
  return meter.createHistogram(name, {
    description,
    unit: 's',
    advice: { explicitBucketBoundaries: [...DURATION_BUCKETS_SECONDS] },
  });
}

/** A monotonic count read at scrape time (`_total` is added by the exporter). */
export function observableCounter(
  meter: Meter,
  name: string,
  description: string,
  unit?: string,
): Observable {
  return meter.createObservableCounter(name, {
    description,
    ...(unit === undefined ? {} : { unit }),
  });
}

/** A value read at scrape time. */
export function observableGauge(
  meter: Meter,
  name: string,
  description: string,
  unit?: string,
): Observable {
  return meter.createObservableGauge(name, {
    description,
    ...(unit === undefined ? {} : { unit }),
  });
}

/**
 * Reads `instruments` from a component's own counters with `collect` at scrape time: nothing is
 * recorded on the hot path, so a process pays for its metrics once per scrape, not per event.
 * Returns the function that unregisters it.
 */
export function observeBatch(
  meter: Meter,
  instruments: Observable[],
  collect: (observer: BatchObservableResult) => void,
): () => void {
  meter.addBatchObservableCallback(collect, instruments);
  return () => meter.removeBatchObservableCallback(collect, instruments);
}
