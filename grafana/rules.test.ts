import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { findExecutable } from '../services/processes.ts';
import { isKnownSeries, parseMetricCatalogue } from './metric-catalogue.ts';
import { analyzePromql } from './promql.ts';

const promtool = findExecutable(['promtool', '/usr/bin/promtool']);

/** promtool ships with Prometheus, which the test setup installs: its absence fails, loudly. */
function requirePromtool(): string {
  if (promtool === undefined) throw new Error('promtool not found: apt-get install prometheus');
  return promtool;
}
const RULES_DIR = fileURLToPath(new URL('rules/', import.meta.url));
const ruleFiles = readdirSync(RULES_DIR).filter((name) => name.endsWith('.rules.yml'));
const testFiles = readdirSync(RULES_DIR).filter((name) => name.endsWith('.test.yml'));

interface Rule {
  record?: string;
  alert?: string;
  expr: string;
}

const rules: Rule[] = ruleFiles.flatMap((name) => {
  const doc = parse(readFileSync(join(RULES_DIR, name), 'utf8')) as {
    groups: { rules: Rule[] }[];
  };
  return doc.groups.flatMap((group) => group.rules);
});

function runPromtool(args: string[]): { status: number | null; output: string } {
  const result = spawnSync(requirePromtool(), args, { cwd: RULES_DIR, encoding: 'utf8' });
  return { status: result.status, output: result.stdout + result.stderr };
}

describe('grafana/rules', () => {
  it('has recording and alerting rules, each with its promtool test file', () => {
    expect(ruleFiles.sort()).toEqual(['alerts.rules.yml', 'recording.rules.yml']);
    expect(testFiles.sort()).toEqual(['alerts.test.yml', 'recording.test.yml']);
    expect(rules.filter((rule) => rule.alert !== undefined).map((rule) => rule.alert)).toEqual([
      'OpenbellLagP99High',
      'OpenbellEventsDropped',
      'OpenbellBatchesDropped',
      'OpenbellConsumerStalled',
      'OpenbellFeedSlowCloses',
      'OpenbellMassiveDisconnected',
      'OpenbellMassiveStalled',
      'OpenbellStateLost',
      'OpenbellDependencyDown',
      'OpenbellTargetDown',
    ]);
  });

  it('uses only metrics of docs/METRICS.md, up, and rabbitmq_*', () => {
    const catalogue = parseMetricCatalogue(
      readFileSync(new URL('../docs/METRICS.md', import.meta.url), 'utf8'),
    );
    const recorded = new Set(rules.flatMap((rule) => rule.record ?? []));
    for (const rule of rules) {
      const { errors, selectors } = analyzePromql(rule.expr);
      expect(errors, rule.expr).toEqual([]);
      for (const { metric } of selectors) {
        expect(metric, rule.expr).toBeDefined();
        const known = isKnownSeries(catalogue, metric!) || recorded.has(metric!);
        expect(known, `${metric} in ${rule.record ?? rule.alert}`).toBe(true);
      }
    }
  });

  it('pass promtool check rules', () => {
    const { status, output } = runPromtool(['check', 'rules', ...ruleFiles]);
    expect(output).toContain('SUCCESS');
    expect(status, output).toBe(0);
  });

  it.each(testFiles)('pass promtool test rules %s', (name) => {
    const { status, output } = runPromtool(['test', 'rules', name]);
    expect(status, output).toBe(0);
    expect(output).toContain('SUCCESS');
  });
});
