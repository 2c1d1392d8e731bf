import { Command, Option } from 'commander';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { OpenbellError, redactUrl } from '../core/index.ts';
import { SERVICE_NAMES, type ServiceName } from './definitions.ts';
import { ensureServices, stopServices, type EnsureServicesResult } from './ensure.ts';

const PROJECT_DIR = fileURLToPath(new URL('..', import.meta.url));

/** `openbell services up|down|status`: the backing services, made sure of, stopped, or shown. */
export function servicesCommand(): Command {
  const command = new Command('services').description(
    'Make sure Redis, RabbitMQ and Prometheus run (env URL, running, installed binary, apt-get, or docker compose).',
  );
  const only = new Option('--only <names>', `comma-separated subset of ${SERVICE_NAMES.join(', ')}`)
    .env('OPENBELL_SERVICES')
    .argParser(parseServiceNames);
  const json = new Option('--json', 'print the result as JSON');
  const urlHelp =
    '\nEnvironment:\n  REDIS_URL, AMQP_URL, PROMETHEUS_URL   used when they answer\n  RABBITMQ_MANAGEMENT_URL              management API (default: AMQP host, port 15672)';

  command
    .command('up')
    .description('start what is not running; idempotent, and quick when everything already runs')
    .addOption(only)
    .addOption(json)
    .addHelpText('after', urlHelp)
    .action(async (opts: { only?: ServiceName[]; json?: boolean }) => {
      const log = createLogger();
      await exitOnError(log, async () => {
        const result = await ensureServices({
          projectDir: PROJECT_DIR,
          env: process.env,
          log,
          ...(opts.only ? { only: opts.only } : {}),
        });
        print(result, opts.json === true);
      });
    });

  command
    .command('down')
    .description('stop the services this script started (by pid), and nothing else')
    .action(async () => {
      const log = createLogger();
      await exitOnError(log, () => stopServices(PROJECT_DIR, log));
    });

  command
    .command('status')
    .description(
      'show each service, where it came from, and its version, without starting anything',
    )
    .addOption(json)
    .action(async (opts: { json?: boolean }) => {
      const log = createLogger();
      const { statusOfServices } = await import('./status.ts');
      await exitOnError(log, async () => {
        const rows = await statusOfServices(PROJECT_DIR, process.env);
        if (opts.json === true) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
        else
          for (const r of rows)
            process.stdout.write(
              `${r.name.padEnd(11)} ${r.state.padEnd(8)} ${redactUrl(r.url)} ${r.detail}\n`,
            );
        if (rows.some((r) => r.state === 'down')) process.exitCode = 3;
      });
    });
  return command;
}

function parseServiceNames(value: string): ServiceName[] {
  const names = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const name of names) {
    if (!(SERVICE_NAMES as readonly string[]).includes(name)) {
      throw new Error(
        `unknown service ${JSON.stringify(name)}; expected some of ${SERVICE_NAMES.join(', ')}`,
      );
    }
  }
  return names as ServiceName[];
}

function createLogger() {
  return pino(
    { name: 'openbell-services', level: process.env['LOG_LEVEL'] ?? 'info' },
    pino.destination(2),
  );
}

function print(result: EnsureServicesResult, json: boolean): void {
  const rows = result.endpoints.map((e) => ({ ...e, url: redactUrl(e.url) }));
  if (json) {
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return;
  }
  for (const e of rows)
    process.stdout.write(
      `${e.name.padEnd(11)} ${e.source.padEnd(9)} ${e.version.padEnd(8)} ${e.url}\n`,
    );
}

async function exitOnError(log: pino.Logger, work: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (error) {
    if (error instanceof OpenbellError) {
      process.stderr.write(`${error.message}\n`);
    } else {
      log.error({ err: error }, 'failed');
    }
    process.exitCode = 1;
  }
}
