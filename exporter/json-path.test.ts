import { describe, expect, it } from 'vitest';
import {
  evaluatePath,
  parsePathTemplate,
  renderTemplate,
  selectValues,
  translateExpression,
} from './json-path.ts';

const doc = {
  counter: 1234,
  location: 'mars',
  values: [
    { id: 'id-A', count: 1, state: 'ACTIVE' },
    { id: 'id-B', count: 2, state: 'INACTIVE' },
    { id: 'id-C', count: 3, state: 'ACTIVE' },
  ],
  labels: { 'app.kubernetes.io/name': 'mdp', 'with-dash': 7 },
};

describe('translateExpression', () => {
  it('turns Kubernetes JSONPath into jsonpath-plus paths', () => {
    const cases: [string, string][] = [
      [' .counter ', '$.counter'],
      ['$', '$'],
      ['@', '$'],
      ['.', '$'],
      ['$.a.b', '$.a.b'],
      ['@.a', '$.a'],
      ['counter', '$.counter'],
      ['.values[*].id', '$.values[*].id'],
      ['[*]', '$[*]'],
      ['.values[0]', '$.values[0]'],
      ['.values[-1:].id', '$.values[-1:].id'],
      ['..id', '$..id'],
      ['.a.*', '$.a.*'],
      ['.values[?(@.state == "ACTIVE")].id', '$.values[?(@.state == "ACTIVE")].id'],
      [String.raw`.labels.app\.kubernetes\.io/name`, "$.labels['app.kubernetes.io/name']"],
      ['.labels.with-dash', "$.labels['with-dash']"],
      ['..with-dash', "$..['with-dash']"],
    ];
    for (const [k8s, plus] of cases) expect(translateExpression(k8s), k8s).toBe(plus);
  });

  it('refuses what it cannot translate', () => {
    expect(() => translateExpression('range .items[*]')).toThrow('not supported');
    expect(() => translateExpression('end')).toThrow('not supported');
    expect(() => translateExpression('"literal"')).toThrow('not supported');
    expect(() => translateExpression('')).toThrow('empty');
    expect(() => translateExpression('.a[0')).toThrow('unbalanced');
    expect(() => translateExpression('.a[0]b')).toThrow('unexpected "b"');
    expect(() => translateExpression('.a[?(@.b ==)]')).toThrow('Expected expression');
  });
});

describe('parsePathTemplate', () => {
  it('splits text from expressions, keeping braces inside quotes', () => {
    const t = parsePathTemplate('planet-{ .location }/{.values[?(@.id == "}")]}');
    expect(t.segments).toEqual([
      { kind: 'text', text: 'planet-' },
      { kind: 'path', path: '$.location' },
      { kind: 'text', text: '/' },
      { kind: 'path', path: '$.values[?(@.id == "}")]' },
    ]);
    expect(parsePathTemplate('beta').segments).toEqual([{ kind: 'text', text: 'beta' }]);
    expect(() => parsePathTemplate('{.a')).toThrow('unbalanced');
  });
});

describe('path evaluation', () => {
  it('selects values with filters, wildcards and escaped keys', () => {
    const select = (source: string): unknown[] => selectValues(parsePathTemplate(source), doc);
    expect(select('{ .counter }')).toEqual([1234]);
    expect(select('{.values[?(@.state == "ACTIVE")].id}')).toEqual(['id-A', 'id-C']);
    expect(select("{.values[?(@.count > 1 && @.state != 'ACTIVE')].id}")).toEqual(['id-B']);
    expect(select('{.values[*].count}')).toEqual([1, 2, 3]);
    expect(select(String.raw`{.labels.app\.kubernetes\.io/name}`)).toEqual(['mdp']);
    expect(select('{.values[?(@.missing.deep == 1)]}')).toEqual([]);
    expect(select('{.nothing}')).toEqual([]);
    expect(select('1')).toEqual(['1']);
    expect(select('n-{.counter}')).toEqual(['n-1234']);
  });

  it('stops at limit matches', () => {
    expect(evaluatePath('$.values[*].id', doc, 2)).toEqual(['id-A', 'id-B']);
    expect(evaluatePath('$.values[*].id', doc, 5)).toEqual(['id-A', 'id-B', 'id-C']);
    expect(evaluatePath('$.values[*].id', doc, 0)).toEqual([]);
    expect(renderTemplate(parsePathTemplate('{.values[*].count}'), doc, 2)).toBe('1 2');
  });

  it('evaluates against scalars and null without throwing', () => {
    expect(evaluatePath('$', 5)).toEqual([5]);
    expect(evaluatePath('$.a', 5)).toEqual([]);
    expect(evaluatePath('$.a', null)).toEqual([]);
    expect(evaluatePath('$', undefined)).toEqual([]);
  });

  it('renders label templates, joining several matches with spaces', () => {
    const render = (source: string): string | undefined =>
      renderTemplate(parsePathTemplate(source), doc);
    expect(render('planet-{ .location }')).toBe('planet-mars');
    expect(render('{.values[*].id}')).toBe('id-A id-B id-C');
    expect(render('{.values[0]}')).toBe('{"id":"id-A","count":1,"state":"ACTIVE"}');
    expect(render('{.nothing}')).toBeUndefined();
    expect(render('static')).toBe('static');
  });
});
