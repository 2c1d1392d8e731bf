import { describe, expect, it } from 'vitest';
import { formatRegexLiteral, substituteVariables, variablesIn } from './variables.ts';

describe('grafana variables', () => {
  it('substitute every spelling, and leave unknown ones for the parser to reject', () => {
    const expr =
      'rate(x{run=~"$run", a="${run}", b="[[run]]", c="${run:regex}"}[$__rate_interval]) $nope';
    expect(substituteVariables(expr, { run: 'r1', __rate_interval: '15s' })).toBe(
      'rate(x{run=~"r1", a="r1", b="r1", c="r1"}[15s]) $nope',
    );
    expect(variablesIn(expr).sort()).toEqual(['__rate_interval', 'nope', 'run']);
  });

  it('does not read $__rate_interval as a shorter variable', () => {
    expect(
      substituteVariables('[$__rate_interval]', { __rate: 'no', __rate_interval: '20s' }),
    ).toBe('[20s]');
  });

  it('format a run id as a regex literal inside a PromQL string', () => {
    expect(formatRegexLiteral('20261124T213909')).toBe('20261124T213909');
    expect(formatRegexLiteral('a.b+c')).toBe('a\\\\.b\\\\+c');
    expect(formatRegexLiteral('q"x')).toBe('q\\"x');
  });
});
