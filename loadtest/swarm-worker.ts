import { encodeIntoCompressedBase64 } from 'hdr-histogram-js';
import { parentPort, workerData } from 'node:worker_threads';
import type { FromShard, ShardWorkerData, ToShard } from './swarm-pool.ts';
import { createSwarmShard } from './swarm-shard.ts';

// One shard of a swarm in a worker thread: its clients' frames are parsed on this thread, so a
// swarm of thousands of clients uses as many cores as it has shards. The parent says when each
// phase begins and mints the tokens (a function cannot cross threads).
const port = parentPort!;
const data = workerData as ShardWorkerData;
const abort = new AbortController();
const minting = new Map<number, { resolve: (token: string) => void; reject: () => void }>();
const post = (message: FromShard): void => port.postMessage(message);

const shard = createSwarmShard(
  {
    ...data.config,
    token: data.tokenPerClient
      ? (n) =>
          new Promise<string>((resolve, reject) => {
            minting.set(n, { resolve, reject: () => reject(new Error('token')) });
            post({ type: 'token', n });
          })
      : data.config.token,
  },
  abort.signal,
);

const progress = setInterval(
  () => post({ type: 'progress', progress: shard.progress() }),
  data.progressIntervalMs,
);

port.on('message', (message: ToShard) => {
  switch (message.type) {
    case 'token': {
      const pending = minting.get(message.n);
      minting.delete(message.n);
      if (message.token === undefined) pending?.reject();
      else pending?.resolve(message.token);
      return;
    }
    case 'abort':
      abort.abort();
      return;
    case 'open':
      shard.openWindow();
      return;
    case 'close':
      shard.closeWindow();
      return;
    case 'finish':
      void shard.finish().then((part) => {
        clearInterval(progress);
        post({
          type: 'part',
          part: {
            ...part,
            connectLatency: encodeIntoCompressedBase64(part.connectLatency),
            latency: encodeIntoCompressedBase64(part.latency),
          },
        });
        port.close();
      });
      return;
  }
});

void shard.connect().then(() => post({ type: 'connected', progress: shard.progress() }));
