// The five boards: one table each, kept in step with the feed's snapshots and updates.

import { $, direction, el, flash } from './dom.js';
import { fmt } from './format.js';

/** The boards, in display order, with how each formats its score. */
export const BOARDS = [
  { name: 'gappers', title: 'Top gappers', score: 'Gap', format: fmt.pct },
  { name: 'gainers', title: 'Top gainers', score: 'Change', format: fmt.pct },
  { name: 'volume', title: 'Top volume', score: 'Volume', format: fmt.int },
  { name: 'trades', title: 'Trades (60 s)', score: 'Trades', format: fmt.int },
  { name: 'momentum', title: 'Momentum', score: 'Ratio', format: fmt.ratio },
];

const sameRow = (a, b) =>
  a !== undefined && a.score === b.score && a.price === b.price && a.volume === b.volume;

/**
 * Builds the board tables from `template` into `container`. `apply(name, envelope)` takes a
 * board's `snapshot` (replaces its rows) or `update` (merges `rows` by sym, shows `order`);
 * `onDate` hears the trading date the boards are of.
 */
export function createBoards(container, template, onDate) {
  const boards = new Map();
  for (const spec of BOARDS) {
    const section = template.content.firstElementChild.cloneNode(true);
    section.dataset.testid = `board-${spec.name}`;
    section.dataset.board = spec.name;
    $('h2', section).textContent = spec.title;
    $('.score-head', section).textContent = spec.score;
    container.append(section);
    boards.set(spec.name, {
      spec,
      rows: new Map(),
      order: [],
      trs: new Map(),
      loaded: false,
      tbody: $('tbody', section),
      empty: $('.empty', section),
    });
  }

  const apply = (name, { type, data }) => {
    const board = boards.get(name);
    if (board === undefined || data === null || typeof data !== 'object') return;
    if (!Array.isArray(data.rows)) return;
    if (typeof data.date === 'string') onDate(data.date);
    const previous = board.rows;
    if (type === 'snapshot') {
      board.rows = new Map(data.rows.map((row) => [row.sym, row]));
      board.order = data.rows.map((row) => row.sym);
    } else {
      board.rows = new Map(previous);
      for (const row of data.rows) board.rows.set(row.sym, row);
      if (Array.isArray(data.order)) board.order = data.order;
    }
    const shown = new Set(board.order);
    for (const sym of board.rows.keys()) if (!shown.has(sym)) board.rows.delete(sym);
    const changed = new Map();
    // The first snapshot fills the board; flashing every row would say nothing.
    if (board.loaded) {
      for (const [sym, row] of board.rows) {
        const before = previous.get(sym);
        if (!sameRow(before, row)) changed.set(sym, direction(before?.score, row.score));
      }
    }
    board.loaded = true;
    render(board, changed);
  };

  const showError = (name, text) => {
    const board = boards.get(name);
    if (board === undefined) return;
    board.empty.textContent = text;
    board.empty.hidden = false;
  };

  return {
    channels: BOARDS.map((spec) => `board:${spec.name}`),
    has: (name) => boards.has(name),
    apply,
    showError,
  };
}

function render(board, changed) {
  const { tbody, trs, spec } = board;
  for (const [sym, tr] of trs) {
    if (!board.rows.has(sym)) {
      tr.remove();
      trs.delete(sym);
    }
  }
  let position = 0;
  for (const sym of board.order) {
    const row = board.rows.get(sym);
    if (row === undefined) continue; // in the order but never sent: nothing to show
    let tr = trs.get(sym);
    if (tr === undefined) {
      tr = createRow(sym);
      trs.set(sym, tr);
    }
    fillRow(tr, position + 1, row, spec);
    // Move only rows out of place: re-inserting a row would restart its animation.
    const at = tbody.children[position] ?? null;
    if (at !== tr) tbody.insertBefore(tr, at);
    const how = changed.get(sym);
    if (how !== undefined) flash(tr, how);
    position++;
  }
  board.empty.hidden = position > 0;
  if (position === 0) board.empty.textContent = 'No rows yet.';
}

function createRow(sym) {
  const tr = el('tr');
  tr.dataset.sym = sym;
  tr.append(el('td', 'num rank'), el('td', 'sym', sym), el('td', 'num score'));
  tr.append(el('td', 'num price'), el('td', 'num volume'));
  return tr;
}

function fillRow(tr, rank, row, spec) {
  const [rankCell, , scoreCell, priceCell, volumeCell] = tr.children;
  rankCell.textContent = String(rank);
  scoreCell.textContent = spec.format(row.score);
  priceCell.textContent = fmt.price(row.price);
  volumeCell.textContent = fmt.int(row.volume);
  tr.dataset.score = String(row.score);
}
