/** Settings of the k6 suites from their environment (`k6 run -e NAME=value`, or the shell's). */

/** An env var, or `fallback` when unset or empty. */
export function env(name: string, fallback: string): string {
  const value = __ENV[name];
  return value === undefined || value === '' ? fallback : value;
}

/** An integer env var of at least `min`; a bad value stops k6 before any VU starts. */
export function envInt(name: string, fallback: number, min: number): number {
  const text = __ENV[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`${name} must be an integer of at least ${min}, got ${JSON.stringify(text)}`);
  }
  return value;
}
