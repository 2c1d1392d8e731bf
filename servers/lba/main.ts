import { Command } from 'commander';
import { Redis } from 'ioredis';
import {
  createAnalyzer,
  createNames,
  parseTransportOptions,
  type Analyzer,
} from '../../core/index.ts';
import {
  analyzerOptions,
  connectionOptions,
  parseBoardFlags,
  parseConnectionFlags,
  type AnalyzerFlags,
  type ConnectionFlags,
} from '../../cli/options.ts';
import { createRootLogger, runService } from '../../cli/run-service.ts';

type LbaFlags = ConnectionFlags & AnalyzerFlags;

/** `openbell lba`: a headless analyzer; run as many as needed against the same RabbitMQ and Redis. */
export function lbaCommand(): Command {
  const command = new Command('lba').description(
    'Run a headless analyzer: consume event batches from RabbitMQ, apply them to the boards in Redis, publish board updates.',
  );
  for (const option of [...connectionOptions(), ...analyzerOptions()]) command.addOption(option);
  command.action(async (flags: LbaFlags) => {
    const log = createRootLogger('openbell-lba');
    const connection = parseConnectionFlags(flags);
    const transport = parseTransportOptions({
      queueTtlMs: flags.queueTtlMs,
      queueMaxLength: flags.queueMaxLength,
      prefetch: flags.prefetch,
    });
    const board = parseBoardFlags(flags);
    const redis = new Redis(connection.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 2 });
    redis.on('error', (error: Error) => log.debug({ err: error.message }, 'redis'));
    const analyzer: Analyzer = createAnalyzer({
      amqpUrl: connection.amqpUrl,
      redis,
      names: createNames({ namespace: connection.namespace }),
      log,
      group: flags.group,
      topology: { queueTtlMs: transport.queueTtlMs, queueMaxLength: transport.queueMaxLength },
      board,
      prefetch: transport.prefetch,
    });
    await runService(
      {
        start: async () => {
          await redis.connect();
          await analyzer.start();
          log.info({ group: flags.group, namespace: connection.namespace }, 'analyzing');
        },
        close: async () => {
          await analyzer.close();
          redis.disconnect();
        },
      },
      log,
    );
  });
  return command;
}
