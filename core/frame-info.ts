import { EVENT_TYPES, type EventType } from './events.ts';

/** Bit of the status messages (and any unknown `ev`) in a {@link FrameInfo} type mask. */
export const STATUS_BIT = 0x80;

/** What a recording stores next to each raw frame, so replaying never has to parse it to pace or filter. */
export interface FrameInfo {
  /** Messages in the frame (events and statuses). */
  events: number;
  /** Bit `i` set when an event of `EVENT_TYPES[i]` is present; {@link STATUS_BIT} for the rest. */
  types: number;
}

const BITS: ReadonlyMap<string, number> = new Map(
  EVENT_TYPES.map((type, index) => [type, 1 << index]),
);

/** The type-mask bit of one `ev` value. */
export function typeBit(ev: unknown): number {
  return (typeof ev === 'string' ? BITS.get(ev) : undefined) ?? STATUS_BIT;
}

/** The event types a mask holds (statuses and unknown types are not listed). */
export function typesOfMask(mask: number): EventType[] {
  return EVENT_TYPES.filter((_, index) => (mask & (1 << index)) !== 0);
}

/**
 * Counts and types the messages of one raw wire frame (a JSON array). A frame that is not a JSON
 * array is reported as one status-like message, so a recording keeps it byte for byte.
 */
export function describeFrame(data: Uint8Array | string): FrameInfo {
  let parsed: unknown;
  try {
    parsed = JSON.parse(typeof data === 'string' ? data : Buffer.from(data).toString('utf8'));
  } catch {
    return { events: 1, types: STATUS_BIT };
  }
  if (!Array.isArray(parsed)) return { events: 1, types: STATUS_BIT };
  let types = 0;
  for (const message of parsed as unknown[]) {
    types |= typeBit(
      typeof message === 'object' && message !== null
        ? (message as { ev?: unknown }).ev
        : undefined,
    );
  }
  return { events: parsed.length, types };
}
