import { pino } from 'pino';
import { WebSocket } from 'ws';
import amqp from 'amqplib';
import {
  createNames,
  deleteTopology,
  openRecording,
  parseTransportOptions,
} from '../core/index.ts';
import { ensureMarketOpen } from '../replay/scenario.ts';
import { serveReplay, type ReplaySummary } from '../replay/serve.ts';
import type { Measurement } from './measure.ts';

const log = pino({ level: 'warn' }, pino.destination(2));

/**
 * Replay throughput on the bundled market-open scenario at `--speed max`: from the file to the
 * events exchange (decoded and batched as the listener does), and over the Massive-compatible
 * WebSocket to one client that parses every frame. Rates count until the destination has taken
 * every event (the broker confirmed it, the client's buffer drained). Best and median of `runs`.
 */
export async function benchReplay(options: {
  amqpUrl: string;
  runs?: number;
}): Promise<Measurement[]> {
  const path = await ensureMarketOpen();
  const runs = options.runs ?? 3;
  const broker = async (
    k: number,
    delivery: 'persistent' | 'transient',
  ): Promise<ReplaySummary> => {
    const names = createNames({ namespace: `benchreplay${k}${delivery[0]}` });
    const recording = await openRecording(path);
    try {
      return await serveReplay({
        recording,
        log,
        speed: 'max',
        broker: {
          amqpUrl: options.amqpUrl,
          names,
          group: 'analyzers',
          transport: parseTransportOptions({ delivery }),
        },
      });
    } finally {
      await recording.close();
      // Nothing consumes the queue: drop it (and its expired batches) before the next run.
      const connection = await amqp.connect(options.amqpUrl);
      try {
        await deleteTopology(await connection.createChannel(), names, ['analyzers']);
      } finally {
        await connection.close();
      }
    }
  };
  const socket = async (): Promise<ReplaySummary & { received: number }> => {
    const recording = await openRecording(path);
    let received = 0;
    let client: WebSocket | undefined;
    try {
      const summary = await serveReplay({
        recording,
        log,
        speed: 'max',
        server: {
          host: '127.0.0.1',
          port: 0,
          apiKey: 'bench',
          waitClients: 1,
          slowConsumerBytes: 256 * 1024 * 1024,
          onListening: (server) => {
            client = new WebSocket(server.url);
            client.on('open', () => {
              client!.send(JSON.stringify({ action: 'auth', params: 'bench' }));
              client!.send(JSON.stringify({ action: 'subscribe', params: 'A.*,AM.*,T.*' }));
            });
            client.on('message', (data: Buffer) => {
              const messages = JSON.parse(data.toString('utf8')) as { ev: string }[];
              if (messages[0]?.ev !== 'status') received += messages.length;
            });
          },
        },
      });
      return { ...summary, received };
    } finally {
      client?.terminate();
      await recording.close();
    }
  };
  const toBroker: ReplaySummary[] = [];
  const toBrokerTransient: ReplaySummary[] = [];
  const overSocket: (ReplaySummary & { received: number })[] = [];
  // Persistent (the default) and transient batches, run after run on the machine as it is.
  for (let k = 0; k < runs; k++) {
    toBroker.push(await broker(k, 'persistent'));
    toBrokerTransient.push(await broker(k, 'transient'));
  }
  for (let k = 0; k < runs; k++) overSocket.push(await socket());
  return [
    measurement('replay.file-to-broker', toBroker, (s) => ({ dropped: s.broker?.dropped ?? 0 })),
    measurement('replay.file-to-broker.transient', toBrokerTransient, (s) => ({
      dropped: s.broker?.dropped ?? 0,
    })),
    measurement('replay.websocket', overSocket, (s) => ({ received: s.received })),
  ];
}

function measurement<T extends ReplaySummary>(
  name: string,
  runs: T[],
  extra: (best: T) => Record<string, unknown>,
): Measurement {
  // Until the destination took everything (confirms, drained clients), not just until sent.
  const rate = (s: T): number => Math.round(s.events / s.settledSeconds);
  const sorted = [...runs].sort((a, b) => rate(b) - rate(a));
  const best = sorted[0]!;
  const median = sorted[Math.floor(sorted.length / 2)]!;
  return {
    name,
    items: best.events,
    runs: runs.length,
    perSecond: rate(best),
    medianPerSecond: rate(median),
    nsPerItem: Math.round(1e9 / rate(best)),
    sentPerSecond: best.eventsPerSec,
    ...extra(best),
  };
}
