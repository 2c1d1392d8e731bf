// How the page writes numbers and times: fixed en-US formats, so every trader sees the same text.

const nf = (options) => new Intl.NumberFormat('en-US', options);
const PCT = nf({ minimumFractionDigits: 2, maximumFractionDigits: 2, signDisplay: 'exceptZero' });
const INT = nf({ maximumFractionDigits: 0 });
const TWO = nf({ minimumFractionDigits: 2, maximumFractionDigits: 2 });
const FOUR = nf({ minimumFractionDigits: 4, maximumFractionDigits: 4 });
const COMPACT = nf({ notation: 'compact', maximumFractionDigits: 2 });
const TIME = new Intl.DateTimeFormat('en-US', {
  timeZone: 'America/New_York',
  hourCycle: 'h23',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
});

/** A finite number (the feed sends `null` for what it does not know yet). */
export const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

/** What an unknown value shows as. */
export const DASH = '—';

export const fmt = {
  /** Percent with a sign and 2 decimals: `+4.21%`. */
  pct: (v) => (isNum(v) ? `${PCT.format(v)}%` : DASH),
  /** Whole number with grouping: `1,893,400`. */
  int: (v) => (isNum(v) ? INT.format(v) : DASH),
  /** Ratio with 2 decimals: `2.35×`. */
  ratio: (v) => (isNum(v) ? `${TWO.format(v)}×` : DASH),
  /** Price: 2 decimals, 4 below a dollar. */
  price: (v) => (isNum(v) ? (v !== 0 && Math.abs(v) < 1 ? FOUR : TWO).format(v) : DASH),
  /** Dollars, compact: `$861.9M`. */
  money: (v) => (isNum(v) ? `$${COMPACT.format(v)}` : DASH),
  /** Epoch ms as New York wall-clock time: `09:30:05 ET`. */
  time: (v) => (isNum(v) ? `${TIME.format(v)} ET` : DASH),
};
