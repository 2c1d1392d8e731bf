import { z } from 'zod';
import { panelCheckSchema } from './check-schema.ts';
import {
  dashboardJsonSchema,
  flattenPanels,
  variableQuery,
  type DashboardJson,
  type PanelJson,
} from './dashboards.ts';
import { isCounterSeries, isKnownSeries, type MetricCatalogue } from './metric-catalogue.ts';
import { COUNTER_FUNCTIONS, analyzePromql } from './promql.ts';
import { substituteVariables, variablesIn, type GrafanaVariables } from './variables.ts';

/** The Prometheus datasource every panel, query and variable names by uid. */
export const DATASOURCE = { type: 'prometheus', uid: 'openbell-prometheus' } as const;

/** The run id the lint substitutes for `$run`, to find the run filter after substitution. */
const LINT_RUN = 'lint-run';

/**
 * Concrete values for the variables `openbell check` substitutes (CHECKS.md), plus `.*` for the
 * dashboards' own multi-value variables.
 */
export const LINT_VARIABLES: GrafanaVariables = {
  run: LINT_RUN,
  __rate_interval: '15s',
  __interval: '5s',
  __range: '5m',
  service: '.*',
  instance: '.*',
};

/** The variables a query with an `openbellCheck` may use: what `openbell check` substitutes. */
export const CHECK_VARIABLES: ReadonlySet<string> = new Set([
  'run',
  '__rate_interval',
  '__interval',
  '__range',
]);

/** Metric names one expression selects, after substituting the lint's variable values. */
export function metricsOf(expr: string): string[] {
  const { selectors } = analyzePromql(substituteVariables(expr, LINT_VARIABLES));
  return selectors.flatMap((selector) => (selector.metric === undefined ? [] : [selector.metric]));
}

/**
 * Problems of one PromQL expression: syntax, unknown metrics, counters not under
 * rate/increase/irate, selectors without the run filter (when `requireRun`).
 */
export function lintExpression(
  expr: string,
  catalogue: MetricCatalogue,
  requireRun = true,
): string[] {
  const concrete = substituteVariables(expr, LINT_VARIABLES);
  const { errors, selectors } = analyzePromql(concrete);
  const problems = errors.map((error) => `does not parse (${error}) in ${concrete}`);
  if (problems.length > 0) return problems;
  for (const selector of selectors) {
    const name = selector.metric;
    if (name === undefined) {
      problems.push(`a selector without a metric name in ${concrete}`);
      continue;
    }
    if (!isKnownSeries(catalogue, name)) problems.push(`${name} is not in docs/METRICS.md`);
    if (
      isCounterSeries(catalogue, name) &&
      !COUNTER_FUNCTIONS.has(selector.enclosingFunction ?? '')
    ) {
      problems.push(`counter ${name} is used without rate/increase/irate`);
    }
    if (requireRun && !selector.matchers.includes(`run=~"${LINT_RUN}"`)) {
      problems.push(`${name} is selected without run=~"$run"`);
    }
  }
  return problems;
}

function isOurDatasource(ref: unknown): boolean {
  const { type, uid } = (ref ?? {}) as { type?: unknown; uid?: unknown };
  return type === DATASOURCE.type && uid === DATASOURCE.uid;
}

/** Problems of one data panel: title, unit, datasource, queries and its `openbellCheck`. */
export function lintPanel(panel: PanelJson, catalogue: MetricCatalogue): string[] {
  const name = `panel ${JSON.stringify(panel.title ?? `#${panel.id ?? '?'}`)}`;
  const problems: string[] = [];
  if (panel.title === undefined || panel.title.trim() === '') problems.push('a panel has no title');
  const unit = panel.fieldConfig?.defaults?.unit;
  if (typeof unit !== 'string' || unit === '') problems.push('no unit (fieldConfig.defaults.unit)');
  if (!isOurDatasource(panel.datasource)) problems.push(`datasource is not uid ${DATASOURCE.uid}`);
  const targets = panel.targets ?? [];
  if (targets.length === 0) problems.push('no query');
  for (const target of targets) {
    if (target.datasource !== undefined && !isOurDatasource(target.datasource)) {
      problems.push(`query ${target.refId}: datasource is not uid ${DATASOURCE.uid}`);
    }
    for (const problem of lintExpression(target.expr ?? '', catalogue)) {
      problems.push(`query ${target.refId}: ${problem}`);
    }
  }
  if (panel.openbellCheck !== undefined) {
    const check = panelCheckSchema.safeParse(panel.openbellCheck);
    if (!check.success) {
      problems.push(`openbellCheck: ${z.prettifyError(check.error).replace(/\n/g, ' ')}`);
    } else {
      const refId = check.data.target ?? targets[0]?.refId;
      const target = targets.find((t) => t.refId === refId);
      if (target === undefined) problems.push(`openbellCheck: no target ${String(refId)}`);
      const others = variablesIn(target?.expr ?? '').filter((v) => !CHECK_VARIABLES.has(v));
      if (others.length > 0) {
        problems.push(`openbellCheck: its query uses ${others.map((v) => `$${v}`).join(', ')}`);
      }
    }
  }
  return problems.map((problem) => `${name}: ${problem}`);
}

function lintVariables(dashboard: DashboardJson, catalogue: MetricCatalogue): string[] {
  const problems: string[] = [];
  const variables = dashboard.templating?.list ?? [];
  const run = variables.find((variable) => variable.name === 'run');
  if (run === undefined) problems.push('no run variable');
  else if (run.includeAll !== true || run.allValue !== '.*') {
    problems.push('the run variable must include All, with the value .*');
  }
  for (const variable of variables) {
    if (variable.type !== 'query') continue;
    if (!isOurDatasource(variable.datasource)) {
      problems.push(`variable ${variable.name}: datasource is not uid ${DATASOURCE.uid}`);
    }
    const query = variableQuery(variable.query) ?? '';
    const selector = /^label_values\((.+),\s*(\w+)\)$/.exec(query.trim())?.[1];
    if (selector === undefined) {
      problems.push(`variable ${variable.name}: expected label_values(<selector>, <label>)`);
      continue;
    }
    for (const problem of lintExpression(selector, catalogue, false)) {
      problems.push(`variable ${variable.name}: ${problem}`);
    }
  }
  return problems;
}

/**
 * Every problem of one dashboard's JSON, as readable lines (empty when it is fine): structure,
 * the run variable, datasources by uid, titles, units, queries and `openbellCheck`s.
 */
export function lintDashboard(json: unknown, catalogue: MetricCatalogue): string[] {
  const parsed = dashboardJsonSchema.safeParse(json);
  if (!parsed.success) return [`not a dashboard: ${z.prettifyError(parsed.error)}`];
  const dashboard = parsed.data;
  const panels = flattenPanels(dashboard.panels);
  if (panels.length === 0) return ['no panels'];
  return [
    ...lintVariables(dashboard, catalogue),
    ...panels.flatMap((panel) => lintPanel(panel, catalogue)),
  ];
}
