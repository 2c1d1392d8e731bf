import { describe, expect, it } from 'vitest';
import { collectSamples, type Collected } from './collect.ts';
import { parseExporterConfig } from './config.ts';
import { ProbeError } from './errors.ts';
import { formatExposition } from './exposition.ts';
import { DEFAULT_PROBE_LIMITS } from './limits.ts';
import { compileModule } from './plan.ts';
import { promtoolCheckMetrics } from './promtool.ts';

const collect = (
  metrics: unknown[],
  document: unknown,
  limits = DEFAULT_PROBE_LIMITS,
): Collected & { text: string } => {
  const config = parseExporterConfig({ modules: { m: { metrics } } });
  const collected = collectSamples(compileModule(config.modules['m']!), document, limits);
  return { ...collected, text: formatExposition(collected.families) };
};
const lines = (text: string): string[] => text.split('\n').filter((l) => !l.startsWith('#'));

describe('collectSamples', () => {
  it('maps enum strings with valueMap per metric and per value', () => {
    const { text, skipped } = collect(
      [
        { name: 'up', path: '{.status}', valueMap: { ok: 1, degraded: 0 } },
        {
          name: 'svc',
          type: 'object',
          path: '{.services[*]}',
          labels: { id: '{.id}' },
          valueMap: { on: 1, off: 0 },
          values: {
            power: '{.power}',
            health: { path: '{.health}', valueMap: { green: 2, red: 0 } },
          },
        },
      ],
      {
        status: 'degraded',
        services: [
          { id: 'a', power: 'on', health: 'green' },
          { id: 'b', power: 'off', health: 'purple' },
        ],
      },
    );
    expect(lines(text)).toEqual([
      'up 0',
      'svc_power{id="a"} 1',
      'svc_power{id="b"} 0',
      'svc_health{id="a"} 2',
      '',
    ]);
    expect(skipped.not_a_number).toBe(1);
  });

  it("applies json_exporter's valueconverter case-insensitively", () => {
    const { text } = collect(
      [
        {
          name: 'test',
          type: 'object',
          path: '{.values[*]}',
          labels: { name: '{.name}' },
          values: { state: '{.state}' },
          valueconverter: { '{.state}': { active: 1, INACTIVE: 2 } },
        },
      ],
      {
        values: [
          { name: 'a', state: 'ACTIVE' },
          { name: 'b', state: 'inactive' },
        ],
      },
    );
    expect(lines(text)).toEqual(['test_state{name="a"} 1', 'test_state{name="b"} 2', '']);
  });

  it('turns object keys into a label with keyLabel', () => {
    const { text } = collect(
      [
        {
          name: 'events_total',
          type: 'object',
          path: '{.events}',
          keyLabel: 'type',
          valuetype: 'counter',
        },
        {
          name: 'sym',
          type: 'object',
          path: '{.symbols}',
          keyLabel: 'symbol',
          labels: { venue: 'x' },
          values: { last: '{.last}' },
        },
      ],
      { events: { A: 5, T: 7 }, symbols: { AAPL: { last: 101.5 }, MSFT: { last: 400 } } },
    );
    expect(text).toContain(
      '# TYPE events_total counter\nevents_total{type="A"} 5\nevents_total{type="T"} 7\n',
    );
    expect(text).toContain(
      'sym_last{venue="x",symbol="AAPL"} 101.5\nsym_last{venue="x",symbol="MSFT"} 400\n',
    );
  });

  it('drops and counts duplicate series, keeping the first', () => {
    const result = collect(
      [
        {
          name: 'item',
          type: 'object',
          path: '{.items[*]}',
          labels: { id: '{.id}' },
          values: { n: '{.n}' },
        },
        { name: 'item_n', path: '{.extra}', labels: { id: 'a' } },
      ],
      {
        items: [
          { id: 'a', n: 1 },
          { id: 'a', n: 2 },
          { id: 'b', n: 3 },
        ],
        extra: 9,
      },
    );
    expect(lines(result.text)).toEqual(['item_n{id="a"} 1', 'item_n{id="b"} 3', '']);
    expect(result.duplicates).toBe(2);
    expect([...result.problems.values()]).toEqual([
      { family: 'item_n', problem: 'duplicate', count: 2 },
    ]);
  });

  it('writes the configured valuetype, untyped by default, HELP and TYPE once per family', () => {
    const { text } = collect(
      [
        { name: 'g', path: '{.a}', valuetype: 'gauge', help: 'A gauge.' },
        { name: 'c_total', path: '{.a}', valuetype: 'counter' },
        { name: 'u', path: '{.a}' },
        { name: 'g', path: '{.a}', valuetype: 'gauge', labels: { k: 'second' } },
      ],
      { a: 1 },
    );
    expect(text).toBe(
      [
        '# HELP g A gauge.',
        '# TYPE g gauge',
        'g 1',
        'g{k="second"} 1',
        '# HELP c_total c_total',
        '# TYPE c_total counter',
        'c_total 1',
        '# HELP u u',
        '# TYPE u untyped',
        'u 1',
        '',
      ].join('\n'),
    );
  });

  it('skips and counts values that are not numbers, never throwing', () => {
    const metrics = ['num', 'text', 'obj', 'list', 'nul', 'absent', 'many', 'flag', 'numeric'].map(
      (key) => ({ name: key, path: key === 'many' ? '{.list[*]}' : `{.${key}}` }),
    );
    metrics.push({ name: 'entries', type: 'object', path: '{.num}', keyLabel: 'k' } as never);
    const result = collect(metrics, {
      num: 1.5,
      text: 'abc',
      obj: { a: 1 },
      list: [1, 2],
      nul: null,
      flag: true,
      numeric: '-2.5e3',
    });
    expect(lines(result.text)).toEqual(['num 1.5', 'flag 1', 'numeric -2500', '']);
    expect(result.skipped).toEqual({
      missing: 2,
      not_a_number: 3,
      ambiguous: 1,
      not_an_object: 1,
      label_value_too_long: 0,
    });
  });

  it('does not count missing values with allow_missing_key', () => {
    const result = collect(
      [
        { name: 'a', path: '{.feed.clients}', allow_missing_key: true },
        {
          name: 'b',
          type: 'object',
          path: '{.feed}',
          values: { x: '{.x}' },
          allow_missing_key: true,
        },
        { name: 'c', type: 'object', path: '{.feed}', keyLabel: 'k', allow_missing_key: true },
      ],
      { feed: null },
    );
    expect(result.text).toBe('');
    expect(result.skipped.missing).toBe(0);
    expect(result.skipped.not_an_object).toBe(0);
  });

  it('scales values, reads epoch timestamps, static values and labels, and escapes label text', () => {
    const { text } = collect(
      [
        { name: 'lag_seconds', path: '{.lagMs}', scale: 0.001, epochTimestamp: '{.at}' },
        {
          name: 'thing',
          type: 'object',
          path: '{.things[*]}',
          labels: { name: 'x-{.name}', env: 'beta' },
          values: { active: 1 },
        },
      ],
      { lagMs: 250, at: 1700000000123, things: [{ name: 'a"b\\c\nd' }] },
    );
    expect(lines(text)).toEqual([
      'lag_seconds 0.25 1700000000123',
      'thing_active{name="x-a\\"b\\\\c\\nd",env="beta"} 1',
      '',
    ]);
  });

  it('produces output promtool accepts', () => {
    const { text } = collect(
      [
        { name: 'status', path: '{.status}', valueMap: { ok: 1 }, valuetype: 'gauge', help: 'ok?' },
        {
          name: 'events_total',
          type: 'object',
          path: '{.events}',
          keyLabel: 'type',
          valuetype: 'counter',
          help: 'x',
        },
        {
          name: 'odd',
          path: '{.odd}',
          labels: { v: '{.weird}' },
          valuetype: 'gauge',
          help: 'y\nz',
        },
      ],
      { status: 'ok', events: { A: 5, 'T"\\': 7 }, odd: 'NaN', weird: 'a"\\\nb' },
    );
    expect(promtoolCheckMetrics(text)).toEqual({ status: 0, output: '' });
  });
});

describe('collectSamples limits', () => {
  const limits = { ...DEFAULT_PROBE_LIMITS, maxSeries: 100, maxLabelValueBytes: 10 };
  const items = { name: 'item', type: 'object', path: '{.items[*]}', labels: { id: '{.i}' } };
  const itemMetric = { ...items, values: { v: '{.v}' } };

  /** `n` entries (array items or object keys) whose reads are counted. */
  function watched<T extends object>(target: T, n: number, entry: (i: number) => unknown) {
    const reads = { count: 0 };
    for (let i = 0; i < n; i++)
      Object.defineProperty(target, Array.isArray(target) ? i : `k${i}`, {
        enumerable: true,
        get: () => (reads.count++, entry(i)),
      });
    return { target, reads };
  }
  const tooMany = (run: () => unknown): ProbeError => {
    try {
      run();
    } catch (error) {
      if (error instanceof ProbeError) return error;
      throw error;
    }
    throw new Error('expected a ProbeError');
  };

  it('stops reading a document at the item past maxSeries', () => {
    const array = watched([] as unknown[], 100_000, (i) => ({ i, v: 1 }));
    const error = tooMany(() => collect([itemMetric], { items: array.target }, limits));
    expect(error.code).toBe('too_many_series');
    expect(error.message).toBe('metric item: its path selects more than 100 items (maxSeries)');
    expect(array.reads.count).toBeLessThanOrEqual(101);
    const keys = watched({}, 100_000, () => 1);
    const metric = { name: 'n', type: 'object', path: '{.counts}', keyLabel: 'key' };
    expect(tooMany(() => collect([metric], { counts: keys.target }, limits)).code).toBe(
      'too_many_series',
    );
    expect(keys.reads.count).toBeLessThanOrEqual(101);
  });

  it('fails at the series past maxSeries, counting every metric and no duplicate', () => {
    const document = { items: Array.from({ length: 60 }, (_, i) => ({ i, v: 1, w: 2 })) };
    const both = { ...items, values: { v: '{.v}', w: '{.w}' } };
    expect(tooMany(() => collect([both], document, limits)).message).toBe(
      'more than 100 series (maxSeries)',
    );
    const twice = collect([itemMetric, itemMetric], document, limits);
    expect(twice.duplicates).toBe(60);
    expect(lines(twice.text)).toHaveLength(61);
  });

  it('drops series with a label value over maxLabelValueBytes, reading no more than needed', () => {
    const tags = watched([] as unknown[], 100_000, () => 't');
    const metric = { name: 'tagged', path: '1', labels: { tags: '{.tags[*]}' } };
    const result = collect(
      [itemMetric, metric],
      {
        items: [
          { i: '0123456789', v: 1 },
          { i: 'é'.repeat(6), v: 2 },
        ],
        tags: tags.target,
      },
      limits,
    );
    expect(lines(result.text)).toEqual(['item_v{id="0123456789"} 1', '']);
    expect(result.skipped.label_value_too_long).toBe(2);
    expect(tags.reads.count).toBeLessThanOrEqual(12);
  });
});
