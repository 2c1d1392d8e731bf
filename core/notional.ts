/** Notional is summed in integer units of 1/10,000 dollar, so sums are exact in Redis and in JS. */
export const NOTIONAL_UNITS_PER_DOLLAR = 10_000;

/** A trade's notional (price × size) in integer units of {@link NOTIONAL_UNITS_PER_DOLLAR}. */
export function notionalUnits(price: number, size: number): number {
  return Math.round(price * size * NOTIONAL_UNITS_PER_DOLLAR);
}

/**
 * True unless a trade's price and size are both numbers and its notional in
 * {@link NOTIONAL_UNITS_PER_DOLLAR} units is not a safe integer (past 2^53, about $900 billion):
 * the boards sum notionals as integers, exact up to 2^53, so one trade alone must stay within it.
 */
export function isExactNotional(price: unknown, size: unknown): boolean {
  return (
    typeof price !== 'number' ||
    typeof size !== 'number' ||
    Number.isSafeInteger(notionalUnits(price, size))
  );
}
