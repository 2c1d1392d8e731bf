/** Why a selected JSON value produced no sample (a label of `probe_skipped_values`). */
export type SkipReason =
  'missing' | 'not_a_number' | 'ambiguous' | 'not_an_object' | 'label_value_too_long';

/** Every {@link SkipReason}, in the order they are reported. */
export const SKIP_REASONS: readonly SkipReason[] = [
  'missing',
  'not_a_number',
  'ambiguous',
  'not_an_object',
  'label_value_too_long',
];

/** How one configured value turns JSON into a sample value. */
export interface ValueConversion {
  /** Exact text → number (openbell's `valueMap`), tried first. */
  valueMap?: ReadonlyMap<string, number> | undefined;
  /** Lower-cased text → number (json_exporter's `valueconverter`), tried next. */
  converter?: ReadonlyMap<string, number> | undefined;
  /** Multiplies the result (e.g. 0.001 for milliseconds to seconds). @default 1 */
  scale?: number | undefined;
}

/** A sample value, or the reason there is none. */
export type ConvertedValue = { ok: true; value: number } | { ok: false; reason: SkipReason };

const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
const TRUE = new Set(['1', 't', 'T', 'true', 'TRUE', 'True']);
const FALSE = new Set(['0', 'f', 'F', 'false', 'FALSE', 'False']);
const SPECIAL: Record<string, number> = {
  nan: Number.NaN,
  inf: Infinity,
  '+inf': Infinity,
  '-inf': -Infinity,
  infinity: Infinity,
  '+infinity': Infinity,
  '-infinity': -Infinity,
};

/**
 * Converts what a value path selected into a sample value: one match only; mapped text first,
 * then numbers, booleans (1/0) and numeric or boolean strings as json_exporter reads them.
 * Null and absent values are `missing`; objects, arrays and other text are `not_a_number`.
 */
export function convertValue(
  found: readonly unknown[],
  conversion: ValueConversion,
): ConvertedValue {
  if (found.length === 0) return { ok: false, reason: 'missing' };
  if (found.length > 1) return { ok: false, reason: 'ambiguous' };
  const raw = found[0];
  if (raw === null || raw === undefined) return { ok: false, reason: 'missing' };
  const value = mapped(raw, conversion) ?? parseNumber(raw);
  if (value === undefined) return { ok: false, reason: 'not_a_number' };
  return { ok: true, value: value * (conversion.scale ?? 1) };
}

function mapped(raw: unknown, conversion: ValueConversion): number | undefined {
  if (typeof raw !== 'string' && typeof raw !== 'number' && typeof raw !== 'boolean')
    return undefined;
  const text = String(raw);
  return conversion.valueMap?.get(text) ?? conversion.converter?.get(text.toLowerCase());
}

/** A JSON number, boolean or numeric/boolean string as a number; `undefined` otherwise. */
export function parseNumber(raw: unknown): number | undefined {
  if (typeof raw === 'number') return raw;
  if (typeof raw === 'boolean') return raw ? 1 : 0;
  if (typeof raw !== 'string') return undefined;
  if (TRUE.has(raw)) return 1;
  if (FALSE.has(raw)) return 0;
  if (NUMBER.test(raw)) return Number(raw);
  return SPECIAL[raw.toLowerCase()];
}
