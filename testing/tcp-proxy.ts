import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A loopback TCP proxy that can cut the line on demand: the fault "the service went away and came
 * back" that a shared real service cannot be asked to produce in the middle of a test run.
 */
export interface TcpProxy {
  /** Port to connect to instead of the target's. */
  readonly port: number;
  /** Destroys every open connection and refuses new ones until {@link TcpProxy.up}. */
  down(): void;
  up(): void;
  /**
   * Stops forwarding without closing anything: the service seems to stop answering (paused, or a
   * link the kernel has not noticed is dead) until {@link TcpProxy.resume}.
   */
  hang(): void;
  resume(): void;
  close(): Promise<void>;
}

/** Starts a proxy on a free loopback port forwarding to `host:port`. */
export async function createTcpProxy(host: string, port: number): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let isDown = false;
  const server: Server = createServer((client) => {
    if (isDown) {
      client.destroy();
      return;
    }
    const upstream = connect(port, host);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      // A torn line is the point of this proxy; both ends are destroyed together below.
      socket.on('error', () => undefined);
    }
    client.pipe(upstream).pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    down() {
      isDown = true;
      for (const socket of sockets) socket.destroy();
    },
    up() {
      isDown = false;
    },
    hang() {
      for (const socket of sockets) socket.pause();
    },
    resume() {
      for (const socket of sockets) socket.resume();
    },
    close() {
      isDown = true;
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A proxy in front of the host and port of a service URL (`redis://`, `amqp://`, defaults 6379
 * and 5672), and the same URL through it: a shared service made unreachable for one test only.
 */
export async function proxyServiceUrl(url: string): Promise<{ proxy: TcpProxy; url: string }> {
  const target = new URL(url);
  const defaultPort = target.protocol === 'redis:' ? 6379 : 5672;
  const proxy = await createTcpProxy(target.hostname, Number(target.port || defaultPort));
  target.hostname = '127.0.0.1';
  target.port = String(proxy.port);
  return { proxy, url: target.toString() };
}
