import { Command, Option } from 'commander';
import { integer } from '../cli/options.ts';
import { createRootLogger, runService } from '../cli/run-service.ts';
import { startProcessTelemetry, telemetryOptions, type TelemetryFlags } from '../cli/telemetry.ts';
import { loadExporterConfig } from './config.ts';
import { createExporter } from './server.ts';

interface ExporterFlags extends Partial<TelemetryFlags> {
  config: string;
  host: string;
  port: number;
  timeoutMs: number;
  maxBodyBytes: number;
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
        .default(10_000),
    )
    .addOption(
      new Option('--max-body-bytes <n>', 'a longer target body fails the probe')
        .env('EXPORTER_MAX_BODY_BYTES')
        .argParser(integer)
        .default(16 * 1024 * 1024),
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
      metricsHandler: (req, res) => telemetry.telemetry.metricsHandler(req, res),
    });
    await runService(
      telemetry.around(exporter, () => exporter.server),
      log,
    );
  });
  return command;
}
