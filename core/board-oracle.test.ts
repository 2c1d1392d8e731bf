import { describe, expect, it } from 'vitest';
import { computeBoards } from './board-oracle.ts';
import { DEFAULTS } from './config.ts';

const DATE = '2026-11-24';
const OPEN = Date.parse('2026-11-24T14:30:00Z');

describe('board oracle', () => {
  it('leaves out a trade whose notional the decoder and the analyzers drop', () => {
    const view = computeBoards(
      [
        { ev: 'T', sym: 'OK', p: 10, s: 100, t: OPEN },
        { ev: 'T', sym: 'HUGE', p: 1e12, s: 1, t: OPEN + 1 },
      ],
      DATE,
      new Map(),
      DEFAULTS.board,
    );
    expect(view.boards.trades.map((row) => row.sym)).toEqual(['OK']);
  });
});
