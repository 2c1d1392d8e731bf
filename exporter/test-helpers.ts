import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Exporter } from './server.ts';

/** Loopback HTTP servers a test starts on free ports and closes in `afterAll`. */
export class TestTargets {
  readonly #servers: Server[] = [];

  /** Starts a server on 127.0.0.1, port 0; resolves with its `http://127.0.0.1:<port>`. */
  async start(listener: RequestListener): Promise<string> {
    const server = createServer(listener);
    this.#servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  /** Closes every server and its connections. */
  async close(): Promise<void> {
    await Promise.all(
      this.#servers.map(
        (server) =>
          new Promise<void>((resolve) => {
            server.closeAllConnections();
            server.close(() => resolve());
          }),
      ),
    );
  }
}

/** One `/probe` answer. */
export interface ProbeAnswer {
  status: number;
  text: string;
}

/** Asks a running exporter to probe `target` with `module`. */
export async function probe(
  exporter: Exporter,
  module: string,
  target: string,
): Promise<ProbeAnswer> {
  const query = `module=${module}&target=${encodeURIComponent(target)}`;
  const response = await fetch(`http://127.0.0.1:${exporter.port}/probe?${query}`);
  return { status: response.status, text: await response.text() };
}

/** The exporter's own `/metrics` text. */
export async function ownMetrics(exporter: Exporter): Promise<string> {
  return (await fetch(`http://127.0.0.1:${exporter.port}/metrics`)).text();
}

/** The value of one series (`name{labels}` exactly as exposed) in a text exposition. */
export function sampleValue(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1).split(' ')[0]);
}
