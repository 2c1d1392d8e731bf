import { CommanderError } from 'commander';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { runSwarm, perClientRate } from './swarm.ts';
import { formatSwarmSummary, parseChannelList, parseDuration, swarmCommand } from './swarm-main.ts';
import {
  SUBSCRIBE_ID,
  classifyConnectError,
  createLatencyHistogram,
  createSwarmTally,
  seqGap,
  summarizeLatency,
  type TallyClient,
} from './swarm-tally.ts';

// The feed's own field order (what the swarm reads without parsing, for updates).
const envelope = (type: string, channel: string, seq: number, ts: number, data: unknown = {}) =>
  Buffer.from(JSON.stringify({ type, channel, seq, ts, data }));

describe('parseDuration', () => {
  it('parses ms, s, m and h into whole ms', () => {
    expect(parseDuration('1500ms')).toBe(1500);
    expect(parseDuration('30s')).toBe(30_000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('2m')).toBe(120_000);
    expect(parseDuration('1h')).toBe(3_600_000);
    expect(parseDuration('0s')).toBe(0);
  });

  it('rejects a number without a unit, negatives and other units', () => {
    for (const bad of ['30', '-1s', '5d', 's', '1 5s', ''])
      expect(() => parseDuration(bad), bad).toThrow(/like 30s, 2m or 1500ms/);
  });
});

describe('parseChannelList', () => {
  it('splits and trims channels and rejects unknown ones', () => {
    expect(parseChannelList(' board:gainers, symbol:BRK.B ')).toEqual([
      'board:gainers',
      'symbol:BRK.B',
    ]);
    expect(() => parseChannelList('board:losers')).toThrow(/unknown channel "board:losers"/);
    expect(() => parseChannelList(',')).toThrow(/at least one/);
  });
});

describe('seqGap', () => {
  it('is 0 in order, the number missed on a jump, -1 when seq does not advance', () => {
    expect(seqGap(undefined, 1)).toBe(0);
    expect(seqGap(undefined, 3)).toBe(2);
    expect(seqGap(4, 5)).toBe(0);
    expect(seqGap(4, 7)).toBe(2);
    expect(seqGap(4, 4)).toBe(-1);
    expect(seqGap(4, 2)).toBe(-1);
  });
});

describe('swarm tally', () => {
  it('counts types, gaps per channel, errors; records latency only while measuring', () => {
    const tally = createSwarmTally(['board:gainers']);
    const client: TallyClient = { seqs: new Map() };
    const at = 1_750_000_000_000;
    const ack = { op: 'subscribe', channels: ['board:gainers'], top: 20, id: SUBSCRIBE_ID };
    expect(tally.record(client, envelope('ack', '', 1, at, ack), at)).toBe('subscribed');
    expect(tally.record(client, envelope('snapshot', 'board:gainers', 1, at), at)).toBeUndefined();
    tally.record(client, envelope('update', 'board:gainers', 2, at - 50), at);
    tally.measuring = true;
    tally.record(client, envelope('update', 'board:gainers', 3, at - 12.5), at);
    tally.record(client, envelope('update', 'board:gainers', 6, at - 7), at);
    tally.record(client, envelope('update', 'board:gainers', 6, at + 2), at);
    tally.record(client, envelope('snapshot', 'board:gainers', 7, at), at);
    tally.record(client, envelope('heartbeat', '', 2, at), at);
    const error = { code: 'rate_limited', message: 'slow down' };
    expect(tally.record(client, envelope('error', '', 3, at, error), at)).toBeUndefined();
    const refused = { code: 'forbidden_channel', message: 'no', id: SUBSCRIBE_ID };
    expect(tally.record(client, envelope('error', '', 4, at, refused), at)).toBe(
      'subscribe_failed',
    );
    tally.record(client, Buffer.from('not json'), at);
    tally.record(client, Buffer.from('{"type":"update"}'), at);
    tally.record(client, Buffer.from('null'), at);
    tally.measuring = false;
    tally.record(client, envelope('update', 'board:gainers', 8, at - 1000), at);

    expect(tally.messages).toEqual({
      snapshot: 2,
      update: 5,
      ack: 1,
      error: 2,
      heartbeat: 1,
      other: 0,
      unparsable: 3,
    });
    expect(tally.gaps).toEqual({
      total: 1,
      missed: 2,
      outOfOrder: 1,
      byChannel: { 'board:gainers': 1 },
    });
    expect(tally.errors).toEqual({ rate_limited: 1, forbidden_channel: 1 });
    expect(tally.updatesByChannel).toEqual({ 'board:gainers': 5 });
    expect(tally.window).toEqual({ updates: 3, snapshots: 1 });
    expect(tally.negativeLatencies).toBe(1);
    const latency = summarizeLatency(tally.latency);
    expect(latency.count).toBe(3);
    expect(latency.max).toBeCloseTo(12.5, 1);
    expect(latency.p50).toBeCloseTo(7, 1);
  });
});

describe('swarm tally fast path', () => {
  it('counts updates read without parsing exactly as parsed ones', () => {
    const at = 1_750_000_000_000;
    const messages = [
      envelope('snapshot', 'board:volume', 1, at),
      envelope('update', 'board:volume', 2, at - 3, { rows: [{ sym: 'A', score: 1 }] }),
      envelope('update', 'board:volume', 4, at - 5),
      envelope('update', 'board:trades', 1, at - 7),
      // Another field order, a fractional ts, a channel not subscribed: all parsed.
      Buffer.from(`{"seq":5,"type":"update","channel":"board:volume","ts":${at - 9},"data":{}}`),
      envelope('update', 'board:volume', 6, at - 11.5),
      envelope('update', 'board:gappers', 1, at - 13),
      Buffer.from('{"type":"update","channel":"board:volume","seq":7,"ts":'),
    ];
    const run = (channels: string[]) => {
      const tally = createSwarmTally(channels);
      const client: TallyClient = { seqs: new Map() };
      tally.measuring = true;
      for (const message of messages) tally.record(client, message, at);
      return {
        messages: tally.messages,
        gaps: tally.gaps,
        byChannel: tally.updatesByChannel,
        latency: summarizeLatency(tally.latency),
        seqs: [...client.seqs],
      };
    };
    const fast = run(['board:volume', 'board:trades']);
    expect(fast).toEqual(run([]));
    expect(fast.messages.update).toBe(6);
    expect(fast.messages.unparsable).toBe(1);
    expect(fast.gaps.total).toBe(1);
    expect(fast.latency.count).toBe(6);
    expect(fast.latency.max).toBeCloseTo(13, 1);
  });

  it('does not parse the data of a subscribed channel’s update', () => {
    const text =
      '{"type":"update","channel":"board:volume","seq":1,"ts":1750000000000,"data":{oops';
    const fast = createSwarmTally(['board:volume']);
    const parsed = createSwarmTally([]);
    for (const tally of [fast, parsed]) tally.record({ seqs: new Map() }, Buffer.from(text), 0);
    expect([fast.messages.update, fast.messages.unparsable]).toEqual([1, 0]);
    expect([parsed.messages.update, parsed.messages.unparsable]).toEqual([0, 1]);
  });
});

describe('summarizeLatency', () => {
  it('reads null without values, ms at µs resolution with them', () => {
    const histogram = createLatencyHistogram();
    expect(summarizeLatency(histogram)).toEqual({
      count: 0,
      p50: null,
      p90: null,
      p99: null,
      p999: null,
      max: null,
      mean: null,
    });
    for (let us = 1; us <= 1000; us++) histogram.recordValue(us * 100);
    const summary = summarizeLatency(histogram);
    expect(summary.count).toBe(1000);
    expect(summary.p50).toBeCloseTo(50, 0);
    expect(summary.p99).toBeCloseTo(99, 0);
    expect(summary.max).toBeCloseTo(100, 0);
  });
});

describe('classifyConnectError', () => {
  it('names HTTP refusals, timeouts, subprotocol trouble and socket codes', () => {
    expect(classifyConnectError(new Error('Unexpected server response: 429'))).toBe('http_429');
    expect(classifyConnectError(new Error('Opening handshake has timed out'))).toBe('timeout');
    expect(classifyConnectError(new Error('Server sent no subprotocol'))).toBe('subprotocol');
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    expect(classifyConnectError(refused)).toBe('ECONNREFUSED');
    expect(classifyConnectError(new Error('odd'))).toBe('error');
  });
});

describe('perClientRate', () => {
  it('divides by time and clients, 0 without either', () => {
    expect(perClientRate(1200, 10, 10)).toBe(12);
    expect(perClientRate(1200, 0, 10)).toBe(0);
    expect(perClientRate(1200, 10, 0)).toBe(0);
  });
});

describe('swarm command', () => {
  const parse = async (args: string[]): Promise<string> => {
    let output = '';
    const command = swarmCommand()
      .exitOverride()
      .configureOutput({ writeErr: (s) => (output += s), writeOut: () => undefined });
    await expect(command.parseAsync(args, { from: 'user' })).rejects.toBeInstanceOf(CommanderError);
    return output;
  };

  it('refuses a duration without a unit and an unknown channel, naming the flag', async () => {
    expect(await parse(['--duration', '30'])).toMatch(/--duration.*like 30s, 2m or 1500ms/s);
    expect(await parse(['--channels', 'board:losers'])).toMatch(/--channels.*board:losers/s);
    expect(await parse(['--clients', 'many'])).toMatch(/--clients.*whole number/s);
  });
});

describe('runSwarm against a scripted server', () => {
  let server: Server | undefined;
  afterEach(async () => {
    await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
    server?.closeAllConnections();
  });

  it.each([1, 2])(
    'authenticates, ramps, measures after the warm-up, tells its closes from the server’s (%i shards)',
    async (shards) => {
      const tokens: string[] = [];
      let connections = 0;
      const sockets: WebSocket[] = [];
      const wss = new WebSocketServer({
        noServer: true,
        handleProtocols: (offered) => (offered.has('openbell.v1') ? 'openbell.v1' : false),
      });
      server = createServer();
      server.on('upgrade', (request, socket, head) => {
        // The fourth connection is refused before the upgrade, as past a per-IP limit.
        if (++connections === 4) {
          socket.end('HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n');
          return;
        }
        tokens.push(String(request.headers['sec-websocket-protocol']));
        wss.handleUpgrade(request, socket, head, (ws) => {
          sockets.push(ws);
          let seq = 0;
          ws.on('message', () => {
            ws.send(envelope('ack', '', 1, Date.now(), { op: 'subscribe', id: SUBSCRIBE_ID }));
            ws.send(envelope('snapshot', 'board:volume', ++seq, Date.now()));
          });
          const timer = setInterval(() => {
            if (ws.readyState === ws.OPEN)
              ws.send(envelope('update', 'board:volume', ++seq, Date.now()));
          }, 20);
          ws.on('close', () => clearInterval(timer));
        });
      });
      await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
      const port = (server.address() as AddressInfo).port;
      let progressCalls = 0;
      const phases: string[] = [];
      const swarm = runSwarm({
        url: `ws://127.0.0.1:${port}/ws`,
        clients: 6,
        channels: ['board:volume'],
        durationMs: 600,
        rampMs: 100,
        warmupMs: 100,
        maxConnecting: 2,
        token: (n) => Promise.resolve(`t${n}`),
        progressIntervalMs: 50,
        onProgress: () => progressCalls++,
        onPhase: (phase) => {
          phases.push(phase);
          // Mid-window (worker threads take a while to start), the server drops one client as too slow.
          if (phase === 'measuring') setTimeout(() => sockets[0]?.close(1013, 'too slow'), 200);
        },
        shards,
      });
      const result = await swarm;

      expect(new Set(tokens).size).toBe(5);
      for (const offered of tokens) expect(offered).toMatch(/^openbell\.v1,bearer\.t[0-5]$/);
      expect(result.subscribed).toBe(5);
      expect(result.connectFailures).toEqual({ http_429: 1 });
      expect(result.disconnects).toEqual({ total: 1, byCode: { '1013': 1 } });
      expect(result.gaps.total).toBe(0);
      expect(result.window.seconds).toBeGreaterThanOrEqual(0.59);
      expect(result.window.updates).toBeGreaterThan(0);
      expect(result.latencyMs.count).toBe(result.window.updates);
      expect(result.latencyMs.p99).toBeLessThan(50);
      // Updates before the window were counted as messages, not measured.
      expect(result.messages.update).toBeGreaterThan(result.window.updates);
      expect(result.window.updatesPerSecondPerClient).toBeGreaterThan(10);
      expect(progressCalls).toBeGreaterThan(3);
      expect(phases).toEqual(['connecting', 'warmup', 'measuring', 'closing']);
      const summary = formatSwarmSummary(result);
      expect(summary).toMatch(/5 of 6 subscribed; connect failures http_429: 1/);
      expect(summary).toMatch(/disconnects +1 \(1013: 1\)/);
      expect(result.driver.shards).toBe(shards);
      expect(JSON.parse(JSON.stringify(result))).toEqual(result);
    },
  );
});
