import { Command, InvalidArgumentError, Option } from 'commander';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConnectionOptions } from '../core/index.ts';
import {
  boardWindowOptions,
  integer,
  parseBoardFlags,
  type BoardWindowFlags,
} from '../cli/options.ts';
import { createRootLogger } from '../cli/run-service.ts';
import { startProcessTelemetry } from '../cli/telemetry.ts';
import { ensureServices } from '../services/ensure.ts';
import { checkLabRun } from './check-main.ts';
import { formatCheckTable } from './check-format.ts';
import type { CheckReport } from './check.ts';
import { runLab } from './lab.ts';
import { FAULT_KINDS, parseFaultSpec, type FaultSpec } from './lab-faults.ts';
import { findPrometheus } from './lab-prometheus.ts';
import type { LabReport } from './lab-types.ts';
import { formatSummaryTable } from './report.ts';
import { ensureMarketOpen } from './scenario.ts';

const PROJECT = fileURLToPath(new URL('..', import.meta.url));

interface LabFlags extends BoardWindowFlags {
  recording?: string;
  speed: string;
  from?: string;
  to?: string;
  lba: number;
  lagP99LimitMs: number;
  out: string;
  runId?: string;
  compare?: string;
  pocDelayMs: number;
  traders: number;
  prometheus?: boolean | string;
  check?: boolean;
  fault: FaultSpec[];
  recoveryLimitMs: number;
}

/** `openbell lab`: services, mdp, N lba, a replay through the real listener, checks and a report. */
export function labCommand(): Command {
  const command = new Command('lab')
    .description(
      'Run the pipeline end to end on a recording (default: the bundled market-open scenario): services, mdp, N lba, replayer; then judge the run and write lab-report/<run-id>/summary.json and report.html. Exit status 1 when a check fails.',
    )
    .addOption(
      new Option(
        '--recording <file>',
        'recording to replay (default: the bundled market-open scenario)',
      ).env('OPENBELL_LAB_RECORDING'),
    )
    .addOption(
      new Option('--speed <k|max>', 'replay speed: real time × k, or max')
        .env('OPENBELL_LAB_SPEED')
        .default('1'),
    )
    .addOption(
      new Option('--from <HH:MM:SS>', 'replay from this New York time').env('OPENBELL_LAB_FROM'),
    )
    .addOption(
      new Option('--to <HH:MM:SS>', 'replay up to this New York time').env('OPENBELL_LAB_TO'),
    )
    .addOption(
      new Option('--lba <n>', 'headless analyzer processes')
        .env('OPENBELL_LAB_LBA')
        .argParser(integer)
        .default(2),
    )
    .addOption(
      new Option('--lag-p99-limit-ms <ms>', 'the lag check: end-to-end p99 must stay under this')
        .env('OPENBELL_LAB_LAG_P99_LIMIT_MS')
        .argParser(integer)
        .default(2000),
    )
    .addOption(
      new Option('--out <dir>', 'where reports go').env('OPENBELL_LAB_OUT').default('lab-report'),
    )
    .addOption(
      new Option('--run-id <id>', 'name of this run (default: a timestamp)').env(
        'OPENBELL_LAB_RUN_ID',
      ),
    );
  command.addOption(
    new Option(
      '--traders <n>',
      'traders on the mdp feed during the run (the swarm driver, five boards each); 0 for none',
    )
      .env('OPENBELL_LAB_TRADERS')
      .argParser(integer)
      .default(100),
  );
  command
    .addOption(
      new Option(
        '--compare <topology>',
        'also run the stampede on purpose and chart both: poc slows every analyzer per batch',
      )
        .choices(['poc'])
        .env('OPENBELL_LAB_COMPARE'),
    )
    .addOption(
      new Option('--poc-delay-ms <ms>', "the poc run's hold on every batch, one after another")
        .env('OPENBELL_LAB_POC_DELAY_MS')
        .argParser(integer)
        .default(100),
    )
    .addOption(
      new Option(
        '--fault <kind@time[:duration]>',
        `inject a fault, repeatable: kind ${FAULT_KINDS.join('|')}, time a market time (09:30:05, ET) or an offset (+20s), duration e.g. 10s; runs on private Redis and RabbitMQ`,
      )
        .env('OPENBELL_LAB_FAULT')
        .argParser((value: string, previous: FaultSpec[] | undefined) => [
          ...(previous ?? []),
          ...value.split(',').map((spec) => {
            try {
              return parseFaultSpec(spec.trim());
            } catch (error) {
              throw new InvalidArgumentError((error as Error).message);
            }
          }),
        ])
        .default([]),
    )
    .addOption(
      new Option(
        '--recovery-limit-ms <ms>',
        'each fault: the lag p99 must be back under 1 s within this long after it ends',
      )
        .env('OPENBELL_LAB_RECOVERY_LIMIT_MS')
        .argParser(integer)
        .default(30_000),
    );
  command
    .addOption(
      new Option(
        '--prometheus [binary]',
        'scrape the run with a Prometheus of its own (data in <out>/<run-id>/prometheus); default: when one is on PATH',
      ).env('OPENBELL_LAB_PROMETHEUS'),
    )
    .addOption(new Option('--no-prometheus', 'run without a Prometheus'))
    .addOption(
      new Option(
        '--check',
        "also judge the run by the dashboards' openbellCheck thresholds on its Prometheus (openbell check): table after the summary, check.json, exit status 1 on a regression",
      ).env('OPENBELL_LAB_CHECK'),
    );
  for (const option of boardWindowOptions()) command.addOption(option);
  command.action(async (flags: LabFlags) => {
    const log = createRootLogger('openbell-lab');
    if (flags.lba < 1) throw new Error('lab: --lba must be at least 1');
    const prometheus =
      flags.prometheus === false
        ? undefined
        : findPrometheus(typeof flags.prometheus === 'string' ? flags.prometheus : undefined);
    if (flags.prometheus !== undefined && flags.prometheus !== false && prometheus === undefined)
      throw new Error('lab: --prometheus: no prometheus binary found (apt install prometheus)');
    if (flags.check === true && prometheus === undefined)
      throw new Error(
        flags.prometheus === false
          ? 'lab: --check evaluates the run on its Prometheus: drop --no-prometheus'
          : 'lab: --check needs a Prometheus: none on PATH (apt install prometheus, or --prometheus <binary>)',
      );
    // The lab replays in this process: its /metrics is the replayer's.
    const telemetry =
      prometheus === undefined
        ? undefined
        : await startProcessTelemetry(
            'replay',
            { metricsPort: 0, instance: 'replayer' },
            log,
            process.env,
          );
    const metricsAddress = telemetry?.metricsServer?.address() as AddressInfo | undefined;
    const { urls } = await ensureServices({
      projectDir: PROJECT,
      env: process.env,
      only: ['redis', 'rabbitmq'],
      log,
    });
    const connection = parseConnectionOptions({ redisUrl: urls.redisUrl, amqpUrl: urls.amqpUrl });
    const recordingPath = flags.recording ?? (await ensureMarketOpen());
    const runId = flags.runId ?? new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
    const outDir = join(flags.out, runId);
    // The check runs while the lab's Prometheus is up; its table follows the lab's summary.
    let checked: CheckReport | undefined;
    let checkError: string | undefined;
    const whilePrometheus =
      flags.check === true
        ? async (lab: LabReport, prometheusUrl: string): Promise<void> => {
            try {
              checked = await checkLabRun({ report: lab, dir: outDir, prometheusUrl });
            } catch (error) {
              checkError = error instanceof Error ? error.message : String(error);
            }
          }
        : undefined;
    const report = await runLab({
      recordingPath,
      speed: flags.speed,
      from: flags.from,
      to: flags.to,
      lba: flags.lba,
      connection,
      board: parseBoardFlags(flags),
      lagP99LimitMs: flags.lagP99LimitMs,
      outDir,
      runId,
      log,
      compare: flags.compare === 'poc' ? 'poc' : undefined,
      pocDelayMs: flags.pocDelayMs,
      traders: flags.traders,
      faults: flags.fault,
      recoveryLimitMs: flags.recoveryLimitMs,
      withPrometheus:
        prometheus === undefined
          ? undefined
          : {
              binary: prometheus,
              replayMetrics:
                metricsAddress === undefined ? undefined : `127.0.0.1:${metricsAddress.port}`,
            },
      whilePrometheus,
    }).finally(() => telemetry?.close());
    process.stdout.write(`${formatSummaryTable(report)}\nreport: ${join(outDir, 'report.html')}\n`);
    if (!report.passed) process.exitCode = 1;
    if (checked !== undefined)
      process.stdout.write(
        `\n${formatCheckTable(checked)}\ncheck.json: ${join(outDir, 'check.json')}\n`,
      );
    if (flags.check === true && checked?.passed !== true) process.exitCode = 1;
    if (checkError !== undefined) process.stderr.write(`openbell: lab --check: ${checkError}\n`);
  });
  return command;
}
