import { Command, Option } from 'commander';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { loadDashboards, type Dashboard, type DashboardPanel } from '../grafana/dashboards.ts';
import {
  evaluateReport,
  observePanel,
  parseSampleValue,
  readScrapeIntervalS,
  targetOf,
  type Baseline,
  type CheckedReport,
  type CheckReport,
  type PrometheusSource,
  type Worst,
} from './check.ts';
import { formatCheckTable, serializeCheckReport } from './check-format.ts';
import { findPrometheus, startRunPrometheus, type RunPrometheus } from './lab-prometheus.ts';

interface CheckFlags {
  run: string;
  out: string;
  prometheusUrl?: string;
  baseline?: string;
  json?: boolean;
}

/** `openbell check`: a lab run judged by the thresholds next to the dashboards' panels. */
export function checkCommand(): Command {
  return new Command('check')
    .description(
      "Evaluate every dashboard panel's openbellCheck (grafana/CHECKS.md) over a lab run's window against Prometheus: by default a Prometheus started on the run's archived data; optionally against a baseline run's values within each panel's tolerance. Prints a table, writes <out>/<run-id>/check.json. Exit status 1 when the default run fails a check or a query fails.",
    )
    .addOption(
      new Option('--run <id>', 'the lab run to check (its directory under --out)')
        .env('OPENBELL_CHECK_RUN')
        .makeOptionMandatory(),
    )
    .addOption(
      new Option('--out <dir>', 'where lab reports are')
        .env('OPENBELL_LAB_OUT')
        .default('lab-report'),
    )
    .addOption(
      new Option(
        '--prometheus-url <url>',
        "query this Prometheus instead of starting one on the run's archived data",
      ).env('OPENBELL_CHECK_PROMETHEUS_URL'),
    )
    .addOption(
      new Option(
        '--baseline <id>',
        'also compare with this lab run (its check.json, else its archived Prometheus), within each panel tolerance',
      ).env('OPENBELL_CHECK_BASELINE'),
    )
    .addOption(new Option('--json', 'print check.json instead of the table'))
    .action(async (flags: CheckFlags) => {
      if (flags.baseline === flags.run)
        throw new Error('check: --baseline must name another run than --run');
      const dir = join(flags.out, flags.run);
      const report = await readLabSummary(dir);
      const server =
        flags.prometheusUrl === undefined ? await startArchived(dir, report) : undefined;
      let baseline: OpenBaseline | undefined;
      try {
        baseline =
          flags.baseline === undefined
            ? undefined
            : await openBaseline(join(flags.out, flags.baseline), flags.prometheusUrl);
        const url = server?.url ?? flags.prometheusUrl!;
        const result = await checkLabRun({ report, dir, prometheusUrl: url, baseline });
        process.stdout.write(
          flags.json
            ? serializeCheckReport(result)
            : `${formatCheckTable(result)}\ncheck.json: ${join(dir, 'check.json')}\n`,
        );
        if (!result.passed) process.exitCode = 1;
      } finally {
        await baseline?.close();
        await server?.close();
      }
    });
}

/** Options of {@link checkLabRun}. */
export interface CheckLabRunOptions {
  report: CheckedReport;
  /** The run's report directory: check.json goes there. */
  dir: string;
  /** A Prometheus holding the run's series; its scrape interval sets the step. */
  prometheusUrl: string;
  baseline?: Baseline | undefined;
}

/** Evaluates every checked panel for every run of a lab report and writes `check.json`. */
export async function checkLabRun(options: CheckLabRunOptions): Promise<CheckReport> {
  const prometheus: PrometheusSource = {
    url: options.prometheusUrl,
    scrapeIntervalS: await readScrapeIntervalS(options.prometheusUrl),
  };
  const result = await evaluateReport({
    report: options.report,
    dashboards: await loadDashboards(),
    prometheus,
    baseline: options.baseline,
  });
  await writeFile(join(options.dir, 'check.json'), serializeCheckReport(result));
  return result;
}

const summarySchema = z.looseObject({
  runId: z.string(),
  prometheusDir: z.string().optional(),
  runs: z
    .array(
      z.looseObject({
        label: z.string(),
        runLabel: z.string(),
        window: z.looseObject({ startMs: z.number(), endMs: z.number() }),
      }),
    )
    .min(1),
});

/** A lab run's `summary.json`, the parts a check needs; throws naming what is missing. */
export async function readLabSummary(dir: string): Promise<CheckedReport> {
  const file = join(dir, 'summary.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new Error(`check: no lab report at ${file}`, { cause: error });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new Error(`${file}: not JSON`, { cause: error });
  }
  const parsed = summarySchema.safeParse(json);
  if (!parsed.success)
    throw new Error(
      `${file}: not a lab report with run labels and windows (written by a lab before Prometheus runs?): ${z.prettifyError(parsed.error)}`,
    );
  return parsed.data;
}

/** A Prometheus started on a run's archived data (`<dir>/prometheus`). */
async function startArchived(dir: string, report: CheckedReport): Promise<RunPrometheus> {
  if (report.prometheusDir === undefined || !existsSync(join(dir, report.prometheusDir)))
    throw new Error(
      `check: ${dir} has no archived Prometheus (the lab ran without one); pass --prometheus-url`,
    );
  const binary = findPrometheus();
  if (binary === undefined)
    throw new Error('check: no prometheus binary on PATH (apt install prometheus)');
  return startRunPrometheus(join(dir, report.prometheusDir), binary);
}

const valueSchema = z.union([
  z.number(),
  z.enum(['+Inf', '-Inf', 'NaN']).transform(parseSampleValue),
]);
const observedSchema = z.looseObject({
  value: valueSchema,
  labels: z.record(z.string(), z.string()),
});

/** What a baseline reads of a check.json: each run's panels and their worst values. */
const checkJsonSchema = z.looseObject({
  runId: z.string(),
  runs: z.array(
    z.looseObject({
      label: z.string(),
      runLabel: z.string(),
      panels: z.array(
        z.looseObject({
          dashboardUid: z.string(),
          panel: z.string(),
          expr: z.string(),
          check: z.looseObject({ reduce: z.string() }),
          verdict: z.string(),
          worst: z
            .looseObject({ max: observedSchema.optional(), min: observedSchema.optional() })
            .nullable(),
        }),
      ),
    }),
  ),
});

/** The parts of a check.json a baseline reads. */
export type CheckJson = z.infer<typeof checkJsonSchema>;

/** Parses check.json for a baseline; throws naming the bad field. */
export function parseCheckJson(json: unknown, file: string): CheckJson {
  const parsed = checkJsonSchema.safeParse(json);
  if (!parsed.success)
    throw new Error(`${file}: not a check.json: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

/**
 * A panel's entry in a baseline's check.json: same run label, dashboard, panel, query and
 * reduce (a changed query is evaluated again), and not a query error.
 */
export function findCheckJsonPanel(
  json: CheckJson,
  label: string,
  dashboard: Dashboard,
  panel: DashboardPanel,
): { runLabel: string; worst: Worst | null } | undefined {
  const run = json.runs.find((r) => r.label === label);
  const target = targetOf(panel);
  const entry = run?.panels.find(
    (p) =>
      p.dashboardUid === dashboard.uid &&
      p.panel === panel.title &&
      p.expr === target?.expr &&
      p.check.reduce === panel.check?.reduce &&
      p.verdict !== 'error',
  );
  return run === undefined || entry === undefined
    ? undefined
    : { runLabel: run.runLabel, worst: entry.worst };
}

/** A {@link Baseline} read from a report directory; `close()` stops its Prometheus, if started. */
export interface OpenBaseline extends Baseline {
  close(): Promise<void>;
}

/**
 * The baseline run in `dir`: each panel from its check.json when the entry matches, else
 * evaluated on its archived Prometheus (started on first need), else on `prometheusUrl`.
 */
export async function openBaseline(
  dir: string,
  prometheusUrl: string | undefined,
): Promise<OpenBaseline> {
  const report = await readLabSummary(dir);
  const checkFile = join(dir, 'check.json');
  const json = existsSync(checkFile)
    ? parseCheckJson(JSON.parse(await readFile(checkFile, 'utf8')) as unknown, checkFile)
    : undefined;
  const archived =
    report.prometheusDir !== undefined && existsSync(join(dir, report.prometheusDir));
  if (json === undefined && !archived && prometheusUrl === undefined)
    throw new Error(
      `check: baseline ${dir} has neither a check.json nor an archived Prometheus; pass --prometheus-url`,
    );
  let server: Promise<RunPrometheus> | undefined;
  let source: Promise<PrometheusSource> | undefined;
  const prometheus = (): Promise<PrometheusSource> =>
    (source ??= (async () => {
      const url = archived ? (await (server = startArchived(dir, report))).url : prometheusUrl!;
      return { url, scrapeIntervalS: await readScrapeIntervalS(url) };
    })());
  return {
    runId: report.runId,
    async lookup(label, dashboard, panel) {
      const run = report.runs.find((r) => r.label === label);
      if (run === undefined) return { skipped: `baseline has no ${label} run` };
      const entry =
        json === undefined ? undefined : findCheckJsonPanel(json, label, dashboard, panel);
      if (entry !== undefined) return { ...entry, source: 'check.json' };
      if (!archived && prometheusUrl === undefined)
        return { skipped: 'not in the baseline’s check.json, and no Prometheus to evaluate it' };
      const { worst } = await observePanel(await prometheus(), run, panel);
      return { runLabel: run.runLabel, source: 'prometheus', worst: worst ?? null };
    },
    async close() {
      // A Prometheus that failed to start has nothing to stop; its error went to the lookup.
      const started = await server?.catch(() => undefined);
      await started?.close();
    },
  };
}
