// The watched symbol's live state (FEED.md, `symbol:<SYM>`).

import { $, direction, el, flash } from './dom.js';
import { DASH, fmt, isNum } from './format.js';

/** Tickers the feed accepts (core/decode.ts isValidSymbol). */
export const SYMBOL = /^[A-Za-z0-9][A-Za-z0-9._\-/^=+]{0,31}$/;

/** Fields of the state, in display order. */
const FIELDS = [
  ['price', 'Price', fmt.price],
  ['changePct', 'Change vs open', fmt.pct],
  ['gapPct', 'Gap vs prev. close', fmt.pct],
  ['volume', 'Volume', fmt.int],
  ['open', 'Open', fmt.price],
  ['prevClose', 'Prev. close', fmt.price],
  ['trades', 'Trades (day)', fmt.int],
  ['notional', 'Notional (day)', fmt.money],
  ['windowTrades', 'Trades (60 s)', fmt.int],
  ['windowNotional', 'Notional (60 s)', fmt.money],
  ['barEndMs', 'Last bar', fmt.time],
  ['firstTradeMs', 'First trade', fmt.time],
];

/**
 * The panel that shows one symbol: `message(sym, text)` while there is no state to show,
 * `show(state)` for each snapshot or update (changed values flash).
 */
export function createSymbolPanel(panel) {
  let last = null;

  const message = (sym, text) => {
    last = null;
    panel.dataset.sym = sym;
    panel.dataset.loaded = 'false';
    panel.replaceChildren(el('p', 'muted', text));
  };

  const show = (state) => {
    if (state === null || typeof state !== 'object') return;
    let list = $('dl', panel);
    if (list === null) {
      list = el('dl');
      for (const [field, label] of FIELDS) {
        const item = el('div');
        item.dataset.field = field;
        item.append(el('dt', '', label), el('dd'));
        list.append(item);
      }
      panel.replaceChildren(el('h2', 'sym'), el('p', 'muted when'), list);
    }
    panel.dataset.loaded = 'true';
    $('.sym', panel).textContent = state.sym ?? panel.dataset.sym;
    $('.when', panel).textContent = isNum(state.price)
      ? `trading date ${state.date ?? DASH}`
      : 'no trades yet';
    for (const [field, , format] of FIELDS) {
      const item = $(`[data-field="${field}"]`, list);
      const dd = $('dd', item);
      const value = state[field];
      dd.textContent = format(value);
      item.dataset.value = value === null || value === undefined ? '' : String(value);
      if (last !== null && last[field] !== value) flash(dd, direction(last[field], value));
    }
    last = state;
  };

  return { message, show };
}
