import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { findExecutable } from '../services/processes.ts';

const promtool = findExecutable(['promtool', '/usr/bin/promtool']);

/** promtool ships with Prometheus, which the test setup installs: its absence fails, loudly. */
function requirePromtool(): string {
  if (promtool === undefined) throw new Error('promtool not found: apt-get install prometheus');
  return promtool;
}

interface PrometheusConfig {
  rule_files: string[];
  scrape_configs: { job_name: string; relabel_configs?: { replacement?: string }[] }[];
}

const read = (name: string): PrometheusConfig =>
  parse(readFileSync(new URL(name, import.meta.url), 'utf8')) as PrometheusConfig;

describe.each(['prometheus.yml', 'prometheus.compose.yml'])('grafana/%s', (name) => {
  it('passes promtool check config, rule files included', () => {
    const config = fileURLToPath(new URL(name, import.meta.url));
    const result = spawnSync(requirePromtool(), ['check', 'config', config], { encoding: 'utf8' });
    const output = result.stdout + result.stderr;
    expect(output).toContain('SUCCESS: 2 rule files found');
    expect(output).not.toContain('FAILED');
    expect(result.status, output).toBe(0);
  });

  it('loads the rules relative to itself and probes the mdp health through the exporter', () => {
    const config = read(name);
    expect(config.rule_files).toEqual(['rules/*.rules.yml']);
    const jobs = config.scrape_configs.map((job) => job.job_name);
    expect(jobs).toEqual(expect.arrayContaining(['prometheus', 'rabbitmq', 'openbell-health']));
    const health = config.scrape_configs.find((job) => job.job_name === 'openbell-health')!;
    expect(health.relabel_configs?.at(-1)?.replacement).toMatch(/:7979$/);
  });
});
