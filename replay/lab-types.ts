/**
 * The shape of a lab run's results: what `openbell lab` samples while it runs, the checks it
 * judges the run by, and what `summary.json` and `report.html` are made from.
 */

/** One sample of the running pipeline, taken about once per second of wall time. */
export interface LabSample {
  /** Epoch ms of the sample (wall clock). */
  wallMs: number;
  /** Market time (epoch ms) the replayer had reached: the recording's clock, for the x axis. */
  marketMs: number;
  /** Events per second over the last interval: sent by the replayer. */
  sentPerSec: number;
  /** Events per second received by the listener, by event type. */
  inPerSec: Record<string, number>;
  /** Events per second applied to the boards by all analyzers together. */
  appliedPerSec: number;
  /** Messages (batches) ready plus unacked in the analyzers' queue. */
  queueDepth: number;
  /** End-to-end lag (listener receive → board applied) over the interval, ms; null when nothing was applied. */
  lagP50Ms: number | null;
  lagP99Ms: number | null;
  /** Cumulative counts since the run started. */
  listenerDrops: number;
  expired: number;
  maxLengthDrops: number;
  /** The traders' delivery latency p99 over the last second, ms; null without traders or updates. */
  feedLatencyP99Ms: number | null;
  /** Resident memory per process, MiB, keyed by process name (`mdp`, `lba-1`, `replayer`, …). */
  rssMiB: Record<string, number>;
}

/** One pass/fail verdict of a run. */
export interface LabCheck {
  name: string;
  passed: boolean;
  /** What was measured against what was required, in words. */
  detail: string;
  /** Set when the check could not apply to this run (e.g. the oracle when events were dropped). */
  skipped?: boolean;
}

/** What the lab's traders (`--traders N`, the swarm driver on the mdp's feed) saw. */
export interface LabFeedTotals {
  clients: number;
  channels: string[];
  subscribed: number;
  connectFailures: number;
  updates: number;
  updatesPerSecondPerClient: number;
  /** Delivery latency: trader receive time − the feed's `ts`, ms (null without updates). */
  latencyP50Ms: number | null;
  latencyP99Ms: number | null;
  latencyMaxMs: number | null;
  seqGaps: number;
  disconnects: number;
  errors: number;
}

/** A fault injected during a run (`--fault`), as it happened. */
export interface LabFault {
  kind: string;
  /** The `--fault` argument. */
  spec: string;
  /** Wall-clock start and end (epoch ms); equal for an instant fault. */
  startWallMs: number;
  endWallMs: number;
  /** Market time (epoch ms) the replay had reached at its start and end: the charts' x axis. */
  startMarketMs: number;
  endMarketMs: number;
  /** What was done, in words (e.g. `killed lba-1, started lba-1b`). */
  detail: string;
}

/** One pipeline run of a lab invocation (two with `--compare`). */
export interface LabRun {
  /** `default` or the compared topology (`poc`). */
  label: string;
  topology: 'default' | 'poc';
  /** The `run` label of this run's series in Prometheus (`openbell check --run`). */
  runLabel: string;
  /** Wall-clock span of the run (epoch ms): the window `openbell check` evaluates. */
  window: { startMs: number; endMs: number };
  samples: LabSample[];
  checks: LabCheck[];
  totals: {
    sentEvents: number;
    receivedEvents: number;
    appliedEvents: number;
    listenerDrops: number;
    expired: number;
    maxLengthDrops: number;
    lagP50Ms: number;
    lagP99Ms: number;
    lagMaxMs: number;
    /** Replay timing: actual minus intended send time, ms. */
    latenessP50Ms: number;
    latenessP99Ms: number;
    wallSeconds: number;
    /** Exit codes or signals of every process at the end (`0` is clean). */
    exits: Record<string, string>;
  };
  /** Present when the run had trader load. */
  feed?: LabFeedTotals;
  /** The faults injected (`--fault`), in order. */
  faults?: LabFault[];
  /**
   * The ledger at the end (`ledger` check): events the listener accepted, applied exactly once,
   * and dropped by stage and reason.
   */
  ledger?: {
    accepted: number;
    applied: number;
    dropped: Record<string, number>;
    unaccounted: number;
  };
}

/** `lab-report/<run-id>/summary.json`. */
export interface LabReport {
  runId: string;
  startedAt: string;
  recording: {
    path: string;
    date: string;
    frames: number;
    events: number;
    fromMs: number;
    toMs: number;
  };
  settings: {
    speed: string;
    lba: number;
    analyzerInMdp: boolean;
    lagP99LimitMs: number;
    traders: number;
    /** `--fault` arguments (none: an empty list). */
    faults?: string[];
    /** Private Redis and RabbitMQ instances of the lab's own (with faults). */
    privateServices?: boolean;
  };
  /** Market time (epoch ms) of the regular session's open, 09:30 ET of the recording's date. */
  openMs: number;
  runs: LabRun[];
  passed: boolean;
  /**
   * The run's Prometheus data, relative to the report's directory (`prometheus/`: its config,
   * rules and TSDB), when the lab ran with one; `openbell check` starts a Prometheus on it again.
   */
  prometheusDir?: string;
}
