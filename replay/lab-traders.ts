import { BOARD_NAMES } from '../core/index.ts';
import { runSwarm } from '../loadtest/swarm.ts';
import type { LabCheck, LabFeedTotals } from './lab-types.ts';

/** Trader load running against the mdp's feed for the length of a lab run. */
export interface LabTraders {
  /** Delivery latency p99 (ms) over the last second, null without updates. */
  readonly recentLatencyP99Ms: number | null;
  /** Ends the load and resolves with what the traders saw. */
  stop(): Promise<LabFeedTotals>;
}

/**
 * Connects `clients` traders (the `openbell swarm` driver) to the feed at `url`, each subscribed
 * to the five boards, and keeps them until {@link LabTraders.stop}. The mdp runs its feed with
 * `--feed-insecure` in the lab, so no token is needed.
 */
export function startTraders(url: string, clients: number): LabTraders {
  const stop = new AbortController();
  const channels = BOARD_NAMES.map((board) => `board:${board}`);
  let recentLatencyP99Ms: number | null = null;
  const run = runSwarm({
    url,
    clients,
    channels,
    // Until stopped: the window ends with the replay.
    durationMs: 24 * 3600 * 1000,
    rampMs: Math.min(5000, clients),
    warmupMs: 0,
    signal: stop.signal,
    onProgress: (progress) => (recentLatencyP99Ms = progress.recentLatencyP99Ms),
  });
  return {
    get recentLatencyP99Ms() {
      return recentLatencyP99Ms;
    },
    async stop() {
      stop.abort();
      const result = await run;
      return {
        clients,
        channels,
        subscribed: result.subscribed,
        connectFailures: Object.values(result.connectFailures).reduce((a, b) => a + b, 0),
        updates: result.window.updates,
        updatesPerSecondPerClient: result.window.updatesPerSecondPerClient,
        latencyP50Ms: result.latencyMs.p50,
        latencyP99Ms: result.latencyMs.p99,
        latencyMaxMs: result.latencyMs.max,
        seqGaps: result.gaps.total,
        disconnects: result.disconnects.total,
        errors: Object.values(result.errors).reduce((a, b) => a + b, 0),
      };
    },
  };
}

/** The feed's verdict: every trader connected and stayed, and none missed a message. */
export function judgeFeed(feed: LabFeedTotals): LabCheck {
  const problems = [
    feed.subscribed < feed.clients
      ? `${feed.clients - feed.subscribed} traders never subscribed`
      : '',
    feed.disconnects > 0 ? `${feed.disconnects} traders were disconnected` : '',
    feed.seqGaps > 0 ? `${feed.seqGaps} seq gaps` : '',
    feed.errors > 0 ? `${feed.errors} error messages` : '',
    feed.updates === 0 ? 'no board update reached the traders' : '',
  ].filter(Boolean);
  return {
    name: 'feed',
    passed: problems.length === 0,
    detail:
      problems.length === 0
        ? `${feed.clients} traders got ${feed.updates} updates (p99 ${feed.latencyP99Ms ?? '–'} ms), no gap, no disconnect`
        : problems.join('; '),
  };
}
