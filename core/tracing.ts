import {
  context,
  propagation,
  trace,
  type Context,
  type Link,
  type SpanContext,
  TraceFlags,
  type Tracer,
} from '@opentelemetry/api';

/** The tracer every openbell component starts its spans from (a no-op until telemetry starts). */
export function openbellTracer(): Tracer {
  return trace.getTracer('openbell');
}

/** W3C trace-context fields (`traceparent`, `tracestate`) of `spanContext`, for a message. */
export function traceHeaders(spanContext: SpanContext): Record<string, string> {
  const carrier: Record<string, string> = {};
  if (!trace.isSpanContextValid(spanContext)) return carrier;
  propagation.inject(trace.setSpanContext(context.active(), spanContext), carrier);
  return carrier;
}

/** The context carried by a message's `traceparent`/`tracestate` fields (the root when none). */
export function contextFromHeaders(
  headers: Readonly<Record<string, unknown>> | undefined,
): Context {
  if (headers === undefined || typeof headers['traceparent'] !== 'string') return context.active();
  const carrier = { traceparent: headers['traceparent'], tracestate: headers['tracestate'] };
  return propagation.extract(context.active(), carrier, {
    get: (c, key) => {
      const value = c[key as keyof typeof c];
      return typeof value === 'string' ? value : undefined;
    },
    keys: (c) => Object.keys(c),
  });
}

/**
 * The sampled span contexts seen since the last {@link LinkRing.take}, at most `max` (the newest
 * kept): a conflated step (a board publication, a feed tick) links to the work it carries.
 */
export interface LinkRing {
  /** Keeps `spanContext` when it is valid and sampled. */
  add(spanContext: SpanContext | undefined): void;
  take(): Link[];
}

/** Creates a {@link LinkRing}. */
export function createLinkRing(max = 16): LinkRing {
  let links: Link[] = [];
  return {
    add(spanContext) {
      if (spanContext === undefined || !trace.isSpanContextValid(spanContext)) return;
      if ((spanContext.traceFlags & TraceFlags.SAMPLED) === 0) return;
      links.push({ context: spanContext });
      if (links.length > max) links = links.slice(-max);
    },
    take() {
      const taken = links;
      links = [];
      return taken;
    },
  };
}
