import { pino } from 'pino';
import { parseBoardOptions, parseTransportOptions } from '../core/index.ts';
import { createMassiveServer, type MassiveServer } from '../replay/massive-server.ts';
import { createMdp, type Mdp, type MdpOptions } from '../servers/mdp/app.ts';
import type { Isolation } from './harness.ts';

/** A started mdp fed by a Massive-protocol test server, in a test's own isolation. */
export interface TestMdp {
  server: MassiveServer;
  mdp: Mdp;
  /** Closes the mdp, then the server. */
  close(): Promise<void>;
}

/**
 * Starts a Massive-protocol server and an mdp subscribed to it (aggregates and trades, an
 * in-process analyzer, 5 ms batches, 50 ms board publication, any free port), with `overrides`
 * applied; resolves once the mdp has subscribed.
 */
export async function startTestMdp(
  iso: Isolation,
  overrides: Partial<MdpOptions> = {},
): Promise<TestMdp> {
  const server = await createMassiveServer({ apiKey: 'test-key' });
  const { amqpUrl, redisUrl, namespace } = iso;
  const mdp = createMdp({
    massive: { url: server.url, apiKey: 'test-key', topics: ['A.*', 'T.*'] },
    connection: { amqpUrl, redisUrl, namespace },
    transport: parseTransportOptions({ batchMaxDelayMs: 5, queueTtlMs: 60_000 }),
    board: parseBoardOptions({ publishIntervalMs: 50 }),
    analyzer: true,
    group: 'analyzers',
    http: { host: '127.0.0.1', port: 0 },
    prevCloses: { kind: 'none' },
    log: pino({ level: 'silent' }),
    ...overrides,
  });
  try {
    await mdp.start();
    await server.waitForSubscribers(1);
  } catch (error) {
    await mdp.close();
    await server.close();
    throw error;
  }
  return {
    server,
    mdp,
    close: async () => {
      await mdp.close();
      await server.close();
    },
  };
}

/** The value of one series (`name` or `name{labels}`) in a Prometheus text exposition. */
export function seriesValue(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1).split(' ')[0]);
}
