import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { DATASOURCE, lintDashboard, metricsOf } from './dashboard-lint.ts';
import { DASHBOARDS_DIR, flattenPanels, loadDashboards, parseDashboard } from './dashboards.ts';
import { readMetricCatalogue, type MetricCatalogue, catalogueName } from './metric-catalogue.ts';

const files = readdirSync(DASHBOARDS_DIR).filter((name) => name.endsWith('.json'));
const read = (name: string): unknown =>
  JSON.parse(readFileSync(join(DASHBOARDS_DIR, name), 'utf8')) as unknown;

let catalogue: MetricCatalogue;
beforeAll(async () => {
  catalogue = await readMetricCatalogue();
});

describe('grafana dashboards', () => {
  it('exist: pipeline, analyzers, feed, replay, process health', () => {
    expect(files.sort()).toEqual([
      'analyzers.json',
      'feed.json',
      'pipeline.json',
      'process-health.json',
      'replay.json',
    ]);
  });

  it.each(files)('%s passes the lint', (name) => {
    expect(lintDashboard(read(name), catalogue)).toEqual([]);
  });

  it('load with their panels flattened, units, targets and checks', async () => {
    const dashboards = await loadDashboards();
    expect(dashboards.map((d) => d.uid)).toEqual([
      'openbell-analyzers',
      'openbell-feed',
      'openbell-pipeline',
      'openbell-process-health',
      'openbell-replay',
    ]);
    const panels = dashboards.flatMap((d) => d.panels);
    expect(panels.every((p) => p.type !== 'row' && p.unit !== undefined)).toBe(true);
    const checked = new Map(panels.flatMap((p) => (p.check ? [[p.title, p.check]] : [])));
    expect(checked.get('End-to-end lag')).toEqual({ reduce: 'max', max: 1, tolerance: 0.5 });
    expect(checked.get('Dropped events over the run')).toEqual({ reduce: 'max', max: 0 });
    expect(checked.get('Slow closes over the run')).toEqual({ reduce: 'max', max: 0 });
    expect(checked.get('Events applied, all analyzers')?.min).toBeGreaterThan(0);
    expect(checked.get('Event-loop delay p99, worst process')?.max).toBeDefined();
    expect(checked.get('Frame lateness')?.max).toBeDefined();
  });

  it('name the datasource Grafana is provisioned with', () => {
    const file = new URL('provisioning/datasources/prometheus.yml', import.meta.url);
    const doc = parse(readFileSync(file, 'utf8')) as {
      datasources: { uid: string; type: string }[];
    };
    expect(doc.datasources).toEqual([expect.objectContaining(DATASOURCE)]);
  });

  it('have unique uids and panel ids', () => {
    const uids = files.map((name) => (read(name) as { uid: string }).uid);
    expect(new Set(uids).size).toBe(uids.length);
    for (const name of files) {
      const ids = flattenPanels((read(name) as { panels: [] }).panels).map((p) => p.id);
      expect(new Set(ids).size, name).toBe(ids.length);
    }
  });

  it('chart every metric of docs/METRICS.md (a warning, not a failure)', () => {
    const used = new Set<string>();
    for (const name of files) {
      for (const panel of parseDashboard(read(name), name).panels) {
        for (const target of panel.targets) {
          for (const metric of metricsOf(target.expr))
            used.add(catalogueName(catalogue, metric) ?? metric);
        }
      }
    }
    const unused = [...catalogue.keys()].filter((metric) => !used.has(metric));
    // A new metric without a panel should not fail other engineers' builds; it is reported.
    if (unused.length > 0) console.warn(`metrics no dashboard charts: ${unused.join(', ')}`);
    expect(used.size).toBeGreaterThan(0);
  });
});
