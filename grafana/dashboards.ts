import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { panelCheckSchema, type PanelCheck } from './check-schema.ts';

/** The folder Grafana provisions openbell's dashboards from. */
export const DASHBOARDS_DIR = fileURLToPath(new URL('dashboards/', import.meta.url));

const targetJsonSchema = z.looseObject({
  refId: z.string(),
  expr: z.string().optional(),
  legendFormat: z.string().optional(),
  datasource: z.unknown().optional(),
});

/** A panel as stored in dashboard JSON (rows hold their panels when collapsed). */
export interface PanelJson {
  [key: string]: unknown;
  id?: number | undefined;
  type: string;
  title?: string | undefined;
  /** `{ type, uid }` in current dashboards; a name (string) in old ones. */
  datasource?: unknown;
  fieldConfig?: { [key: string]: unknown; defaults?: { [key: string]: unknown; unit?: unknown } };
  targets?: z.infer<typeof targetJsonSchema>[] | undefined;
  panels?: PanelJson[] | undefined;
  openbellCheck?: unknown;
}

const panelJsonSchema: z.ZodType<PanelJson> = z.lazy(() =>
  z.looseObject({
    id: z.number().optional(),
    type: z.string(),
    title: z.string().optional(),
    datasource: z.unknown().optional(),
    fieldConfig: z
      .looseObject({ defaults: z.looseObject({ unit: z.unknown().optional() }).optional() })
      .optional(),
    targets: z.array(targetJsonSchema).optional(),
    panels: z.array(panelJsonSchema).optional(),
    openbellCheck: z.unknown().optional(),
  }),
);

const variableJsonSchema = z.looseObject({
  name: z.string(),
  type: z.string(),
  query: z.unknown().optional(),
  datasource: z.unknown().optional(),
  includeAll: z.boolean().optional(),
  allValue: z.string().nullable().optional(),
});

/** The parts of Grafana's dashboard JSON model openbell reads; everything else passes through. */
export const dashboardJsonSchema = z.looseObject({
  uid: z.string().min(1),
  title: z.string().min(1),
  schemaVersion: z.number(),
  panels: z.array(panelJsonSchema),
  templating: z.looseObject({ list: z.array(variableJsonSchema) }).optional(),
});

/** A dashboard as stored in JSON, after {@link dashboardJsonSchema}. */
export type DashboardJson = z.infer<typeof dashboardJsonSchema>;

/** One query of a panel. */
export interface DashboardTarget {
  refId: string;
  /** PromQL, with Grafana variables (`$run`, `$__rate_interval`) still in it. */
  expr: string;
  legendFormat: string | undefined;
}

/** A panel with what the lint and `openbell check` need. */
export interface DashboardPanel {
  id: number | undefined;
  type: string;
  title: string;
  /** `fieldConfig.defaults.unit`. */
  unit: string | undefined;
  targets: DashboardTarget[];
  /** The validated `openbellCheck`, when the panel has one. */
  check: PanelCheck | undefined;
}

/** A template variable of a dashboard. */
export interface DashboardVariable {
  name: string;
  type: string;
  query: string | undefined;
}

/** A parsed dashboard: its panels flattened out of rows. */
export interface Dashboard {
  /** The file it was read from (or a name given by the caller). */
  file: string;
  uid: string;
  title: string;
  variables: DashboardVariable[];
  panels: DashboardPanel[];
}

/** Every panel that shows data: rows are replaced by the panels they hold. */
export function flattenPanels(panels: readonly PanelJson[]): PanelJson[] {
  return panels.flatMap((panel) =>
    panel.type === 'row' ? flattenPanels(panel.panels ?? []) : [panel],
  );
}

/** The query text of a variable (`query` is a string or `{ query }` depending on the version). */
export function variableQuery(query: unknown): string | undefined {
  if (typeof query === 'string') return query;
  if (typeof query === 'object' && query !== null && 'query' in query) {
    const inner = query.query;
    return typeof inner === 'string' ? inner : undefined;
  }
  return undefined;
}

/**
 * Validates dashboard JSON and returns its panels with titles, units, targets and checks. Throws
 * an error naming the file and panel when the JSON or an `openbellCheck` is malformed.
 */
export function parseDashboard(json: unknown, file: string): Dashboard {
  const parsed = dashboardJsonSchema.safeParse(json);
  if (!parsed.success)
    throw new Error(`${file}: not a dashboard: ${z.prettifyError(parsed.error)}`);
  const dashboard = parsed.data;
  const panels = flattenPanels(dashboard.panels).map((panel): DashboardPanel => {
    const title = panel.title ?? '';
    let check: PanelCheck | undefined;
    if (panel.openbellCheck !== undefined) {
      const result = panelCheckSchema.safeParse(panel.openbellCheck);
      if (!result.success) {
        throw new Error(
          `${file}: panel ${JSON.stringify(title)}: bad openbellCheck: ${z.prettifyError(result.error)}`,
        );
      }
      check = result.data;
    }
    const unit = panel.fieldConfig?.defaults?.unit;
    return {
      id: panel.id,
      type: panel.type,
      title,
      unit: typeof unit === 'string' && unit !== '' ? unit : undefined,
      targets: (panel.targets ?? []).map((target) => ({
        refId: target.refId,
        expr: target.expr ?? '',
        legendFormat: target.legendFormat,
      })),
      check,
    };
  });
  const variables = (dashboard.templating?.list ?? []).map((variable) => ({
    name: variable.name,
    type: variable.type,
    query: variableQuery(variable.query),
  }));
  return { file, uid: dashboard.uid, title: dashboard.title, variables, panels };
}

/** Reads and parses every `*.json` dashboard in `dir`, sorted by file name. */
export async function loadDashboards(dir: string = DASHBOARDS_DIR): Promise<Dashboard[]> {
  const files = (await readdir(dir)).filter((name) => name.endsWith('.json')).sort();
  return Promise.all(
    files.map(async (name) => {
      const path = join(dir, name);
      return parseDashboard(JSON.parse(await readFile(path, 'utf8')) as unknown, path);
    }),
  );
}
