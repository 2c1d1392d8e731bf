import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { findExecutable } from '../services/processes.ts';

const promtool = findExecutable(['promtool', '/usr/bin/promtool']);

describe('grafana/prometheus.yml', () => {
  // promtool ships with Prometheus; it is absent only where Prometheus came from PROMETHEUS_URL.
  it.skipIf(promtool === undefined)('passes promtool check config', () => {
    const config = fileURLToPath(new URL('prometheus.yml', import.meta.url));
    const result = spawnSync(promtool!, ['check', 'config', config], { encoding: 'utf8' });
    expect(result.stdout + result.stderr).toContain('SUCCESS');
    expect(result.status).toBe(0);
  });
});
