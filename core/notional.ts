/** Notional is summed in integer units of 1/10,000 dollar, so sums are exact in Redis and in JS. */
export const NOTIONAL_UNITS_PER_DOLLAR = 10_000;

/** A trade's notional (price × size) in integer units of {@link NOTIONAL_UNITS_PER_DOLLAR}. */
export function notionalUnits(price: number, size: number): number {
  return Math.round(price * size * NOTIONAL_UNITS_PER_DOLLAR);
}
