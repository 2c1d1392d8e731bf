import { describe, expect, it } from 'vitest';
import { serviceUrls } from '../testing/harness.ts';
import { loadDashboards } from './dashboards.ts';
import { LINT_VARIABLES } from './dashboard-lint.ts';
import { substituteVariables } from './variables.ts';

const dashboards = await loadDashboards();
const queries = dashboards.flatMap((dashboard) =>
  dashboard.panels.flatMap((panel) =>
    panel.targets.map((target) => ({
      name: `${dashboard.uid} / ${panel.title} / ${target.refId}`,
      expr: substituteVariables(target.expr, LINT_VARIABLES),
    })),
  ),
);

describe('dashboard queries', () => {
  // The way `openbell check` runs them: variables substituted, query_range over a window.
  it('are accepted by the real Prometheus as query_range requests', async () => {
    const { prometheusUrl } = serviceUrls();
    const end = Math.floor(Date.now() / 1000);
    const failures: string[] = [];
    for (const { name, expr } of queries) {
      const body = new URLSearchParams({
        query: expr,
        start: String(end - 300),
        end: String(end),
        step: '15',
      });
      const response = await fetch(`${prometheusUrl}/api/v1/query_range`, { method: 'POST', body });
      const json = (await response.json()) as { status: string; error?: string };
      if (json.status !== 'success') failures.push(`${name}: ${json.error ?? response.status}`);
    }
    expect(failures).toEqual([]);
    expect(queries.length).toBeGreaterThan(40);
  });
});
