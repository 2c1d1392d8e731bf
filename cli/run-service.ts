import { pino, type Logger } from 'pino';

/** A long-running role (mdp, lba) as the CLI runs it. */
export interface RunnableService {
  start(): Promise<void>;
  /** Stops intake, finishes in-flight work, releases connections; idempotent. */
  close(): Promise<void>;
}

/** The root logger of a process: pino JSON lines on stdout. */
export function createRootLogger(name: string): Logger {
  return pino({ name, level: process.env['LOG_LEVEL'] ?? 'info' });
}

/**
 * Starts `service` and keeps the process up until SIGINT or SIGTERM, then closes it under a
 * deadline; a second signal, or the deadline, forces the exit. A failed start exits with 1.
 */
export async function runService(
  service: RunnableService,
  log: Logger,
  shutdownTimeoutMs = 15_000,
): Promise<void> {
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(130);
    }
    stopping = true;
    log.info({ signal, shutdownTimeoutMs }, 'shutting down');
    const deadline = setTimeout(() => {
      log.error({ shutdownTimeoutMs }, 'shutdown deadline passed: exiting');
      process.exit(1);
    }, shutdownTimeoutMs);
    deadline.unref();
    service.close().then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (error: unknown) => {
        log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('unhandledRejection', (error) => {
    log.fatal({ err: error }, 'unhandled rejection');
    process.exit(1);
  });
  try {
    await service.start();
  } catch (error) {
    log.fatal({ err: error }, 'start failed');
    await service.close().catch(() => undefined);
    process.exit(1);
  }
}
