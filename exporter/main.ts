import { Command, InvalidArgumentError, Option } from 'commander';
import { integer } from '../cli/options.ts';
import { createRootLogger, runService } from '../cli/run-service.ts';
import { startProcessTelemetry, telemetryOptions, type TelemetryFlags } from '../cli/telemetry.ts';
import { loadExporterConfig, parseAllowedTargets } from './config.ts';
import { DEFAULT_PROBE_LIMITS } from './limits.ts';
import { createExporter } from './server.ts';

interface ExporterFlags extends Partial<TelemetryFlags> {
  config: string;
  host: string;
  port: number;
  timeoutMs: number;
  maxBodyBytes: number;
  maxRedirects: number;
  maxSeries: number;
  maxLabelValueBytes: number;
  allowedTargets?: string[];
}

/**
 * `openbell exporter`: a Prometheus JSON exporter, config-compatible with json_exporter. A config
 * that does not validate fails before anything listens, with every offending key path.
 */
export function exporterCommand(): Command {
  const command = new Command('exporter').description(
    'Serve /probe?module=<m>&target=<url>: fetch a JSON document and map it to Prometheus metrics (json_exporter-compatible config; see exporter/README.md).',
  );
  command
    .addOption(
      new Option('--config <yaml>', 'modules file (e.g. exporter/openbell.yml)')
        .env('EXPORTER_CONFIG')
        .makeOptionMandatory(),
    )
    .addOption(
      new Option('--host <host>', 'bind address').env('EXPORTER_HOST').default('127.0.0.1'),
    )
    .addOption(
      new Option('--port <port>', 'listen port (0: any free port)')
        .env('EXPORTER_PORT')
        .argParser(integer)
        .default(7979),
    )
    .addOption(
      new Option(
        '--timeout-ms <ms>',
        "longest fetch of a target, unless the module sets timeoutMs; Prometheus's scrape timeout shortens it",
      )
        .env('EXPORTER_TIMEOUT_MS')
        .argParser(integer)
        .default(DEFAULT_PROBE_LIMITS.timeoutMs),
    )
    .addOption(
      new Option('--max-body-bytes <n>', 'a longer target body fails the probe (read as a stream)')
        .env('EXPORTER_MAX_BODY_BYTES')
        .argParser(integer)
        .default(DEFAULT_PROBE_LIMITS.maxBodyBytes),
    )
    .addOption(
      new Option(
        '--max-redirects <n>',
        'redirects a probe follows, each checked against allowedTargets; one more fails it',
      )
        .env('EXPORTER_MAX_REDIRECTS')
        .argParser(integer)
        .default(DEFAULT_PROBE_LIMITS.maxRedirects),
    )
    .addOption(
      new Option(
        '--max-series <n>',
        'series a probe may produce (and items one metric may select); one more fails it',
      )
        .env('EXPORTER_MAX_SERIES')
        .argParser(integer)
        .default(DEFAULT_PROBE_LIMITS.maxSeries),
    )
    .addOption(
      new Option(
        '--max-label-value-bytes <n>',
        'a series with a longer label value is dropped and counted',
      )
        .env('EXPORTER_MAX_LABEL_VALUE_BYTES')
        .argParser(integer)
        .default(DEFAULT_PROBE_LIMITS.maxLabelValueBytes),
    )
    .addOption(
      new Option(
        '--allowed-targets <regexes>',
        "space-separated regular expressions matched against the whole target URL, replacing every module's allowedTargets",
      )
        .env('EXPORTER_ALLOWED_TARGETS')
        .argParser(allowedTargets),
    );
  for (const option of telemetryOptions(false)) command.addOption(option);
  command.action(async (flags: ExporterFlags) => {
    // Throws with the validation message before any logger or socket exists.
    const { config, baseDir } = loadExporterConfig(flags.config);
    const log = createRootLogger('openbell-exporter');
    const telemetry = await startProcessTelemetry('exporter', flags, log, process.env);
    const exporter = createExporter({
      config,
      baseDir,
      host: flags.host,
      port: flags.port,
      log,
      timeoutMs: flags.timeoutMs,
      maxBodyBytes: flags.maxBodyBytes,
      maxRedirects: flags.maxRedirects,
      maxSeries: flags.maxSeries,
      maxLabelValueBytes: flags.maxLabelValueBytes,
      allowedTargets: flags.allowedTargets,
      metricsHandler: (req, res) => telemetry.telemetry.metricsHandler(req, res),
    });
    await runService(
      telemetry.around(exporter, () => exporter.server),
      log,
    );
  });
  return command;
}

function allowedTargets(value: string): string[] {
  try {
    return parseAllowedTargets(value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}
