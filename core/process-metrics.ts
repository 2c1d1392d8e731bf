import type { Meter } from '@opentelemetry/api';
import {
  createDurationHistogram,
  observableCounter,
  observableGauge,
  observeBatch,
} from './instruments.ts';

/** How often the event-loop delay is sampled. */
const LOOP_SAMPLE_MS = 50;

/**
 * Process health every openbell process exposes: RSS, heap, CPU time, and the event-loop delay
 * (how late a 50 ms timer fires, recorded into a histogram so percentiles aggregate across
 * instances). Returns the function that stops the sampling and unregisters the callbacks.
 */
export function observeProcess(meter: Meter): () => void {
  const rss = observableGauge(
    meter,
    'openbell_process_resident_memory_bytes',
    'Resident set size',
    'By',
  );
  const heap = observableGauge(meter, 'openbell_process_heap_used_bytes', 'V8 heap in use', 'By');
  const cpu = observableCounter(
    meter,
    'openbell_process_cpu_seconds',
    'User and system CPU time',
    's',
  );
  const delay = createDurationHistogram(
    meter,
    'openbell_event_loop_delay_seconds',
    'How late a timer fires: event-loop delay, sampled every 50 ms',
  );
  const unobserve = observeBatch(meter, [rss, heap, cpu], (observer) => {
    observer.observe(rss, process.memoryUsage.rss());
    observer.observe(heap, process.memoryUsage().heapUsed);
    const { user, system } = process.cpuUsage();
    observer.observe(cpu, (user + system) / 1e6);
  });
  let expected = performance.now() + LOOP_SAMPLE_MS;
  const timer = setInterval(() => {
    const now = performance.now();
    delay.record(Math.max(0, now - expected) / 1000);
    expected = now + LOOP_SAMPLE_MS;
  }, LOOP_SAMPLE_MS).unref();
  return () => {
    clearInterval(timer);
    unobserve();
  };
}
