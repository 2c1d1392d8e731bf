// The public surface of core: every other folder imports from here and only from here.
export { BATCH_VERSION, decodeBatch, encodeBatch } from './batch.ts';
export type { DecodedBatch, EventBatch } from './batch.ts';
export {
  SPECIAL_CLOSURES,
  holidayOn,
  isEarlyClose,
  isTradingDate,
  newYorkOffsetMs,
  newYorkTimeToMs,
  nextTradingDate,
  previousTradingDate,
  sessionAt,
  tradingDateOf,
  tradingDay,
} from './calendar.ts';
export type { Session, TradingDay } from './calendar.ts';
export {
  DEFAULTS,
  parseBoardOptions,
  parseConnectionOptions,
  parseTransportOptions,
  parseWith,
} from './config.ts';
export type { BoardOptions, ConnectionOptions, TransportOptions } from './config.ts';
export {
  DECODE_REASONS,
  checkBoardEvent,
  createDecodeCounts,
  decodeFrame,
  isValidSymbol,
  parseMessage,
  parseTimestampMs,
} from './decode.ts';
export type { DecodeCounts, DecodeIssue, DecodeReason, DecodedFrame } from './decode.ts';
export { ConfigError, OpenbellError, ServiceError } from './errors.ts';
export type { ErrorCode } from './errors.ts';
export { DISCONNECT_STATUSES, EVENT_TYPES } from './events.ts';
export {
  FEED_BEARER_PREFIX,
  FEED_CLOSE,
  FEED_DEFAULTS,
  FEED_SUBPROTOCOL,
  parseChannel,
  parseClientMessage,
  parseFeedLimits,
  tickSlices,
} from './feed-protocol.ts';
export type {
  FeedChannel,
  FeedClientMessage,
  FeedEnvelope,
  FeedErrorCode,
  FeedLimits,
  FeedMessageType,
} from './feed-protocol.ts';
export {
  MIN_SECRET_LENGTH,
  TOKEN_CLOCK_SKEW_SECONDS,
  assertFeedSecret,
  channelAllowed,
  mintFeedToken,
  verifyFeedToken,
} from './feed-token.ts';
export type { FeedClaims, TokenFailure, VerifyFeedTokenOptions } from './feed-token.ts';
export { readSymbolStates } from './symbol-state.ts';
export type { SymbolState } from './symbol-state.ts';
export type {
  AggregateEvent,
  EventType,
  FairValueEvent,
  ImbalanceEvent,
  KnownStatus,
  LuldEvent,
  MarketEvent,
  QuoteEvent,
  StatusMessage,
  TradeEvent,
} from './events.ts';
export { BOARD_NAMES, assertDate, assertIdentifier, createNames } from './names.ts';
export type { BoardName, Names, NamesOptions } from './names.ts';
export { STATUS_BIT, describeFrame, typeBit, typesOfMask } from './frame-info.ts';
export type { FrameInfo } from './frame-info.ts';
export { RECORDING_FORMAT, RECORDING_MAGIC } from './recording.ts';
export type {
  RecordedFrame,
  RecordingHeader,
  RecordingIndexEntry,
  RecordingMeta,
  RecordingTotals,
} from './recording.ts';
export { createRecordingWriter } from './recording-writer.ts';
export type { RecordingWriter, RecordingWriterOptions } from './recording-writer.ts';
export { openRecording } from './recording-reader.ts';
export type { FrameRange, Recording } from './recording-reader.ts';
export { redactUrl } from './redact.ts';
export { createRandom } from './random.ts';
export { prepareBatch } from './board-prepare.ts';
export { NOTIONAL_UNITS_PER_DOLLAR, notionalUnits } from './notional.ts';
export type { PreparedBatch, PreparedDate } from './board-prepare.ts';
export { createBoardStore } from './board-store.ts';
export type {
  ApplyResult,
  BoardRow,
  BoardStore,
  BoardStoreOptions,
  BoardsView,
  DateLedger,
  LedgerBatch,
} from './board-store.ts';
export { listenerLedger, reconcileLedger } from './ledger.ts';
export type { LedgerBalance, LedgerParts, ListenerLedger } from './ledger.ts';
export { computeBoards } from './board-oracle.ts';
export { createBoardPublisher } from './board-publisher.ts';
export type { BoardPublisher, BoardPublisherOptions, BoardUpdate } from './board-publisher.ts';
export { ANALYZER_BINDINGS, createAnalyzer, declareAnalyzerQueue } from './analyzer.ts';
export type { Analyzer, AnalyzerLedger, AnalyzerOptions, AnalyzerStats } from './analyzer.ts';
export { RecordBuffer, StagedEvents, transcodeFrame } from './event-records.ts';
export { createListener } from './listener.ts';
export type { EncodedBatch, Listener, ListenerOptions, ListenerStats } from './listener.ts';
export { createRateMeter } from './rate.ts';
export type { RateMeter } from './rate.ts';
export { BACKOFF_RESET_AFTER_MS, createReconnectBackoff, nextBackoffMs } from './backoff.ts';
export type { ReconnectBackoff, ReconnectBackoffOptions } from './backoff.ts';
export { LOG_THROTTLE_DEFAULTS, createLogThrottle } from './log-throttle.ts';
export type { LogThrottle, LogThrottleOptions } from './log-throttle.ts';
export { createStallWatch, marketSessionOpen } from './stall-watch.ts';
export type { StallWatch, StallWatchOptions } from './stall-watch.ts';
export { createApplyCheck, createHealthMonitor, observeHealth } from './health.ts';
export type {
  ApplyCheckOptions,
  ApplyCounts,
  DependencyCheck,
  DependencyHealth,
  HealthMonitor,
  HealthMonitorOptions,
  HealthParts,
  HealthStatus,
} from './health.ts';
export { createRedisHealth } from './redis-health.ts';
export type { RedisHealth, RedisHealthOptions } from './redis-health.ts';
export {
  STATE_LOSS_KINDS,
  createStateGuard,
  observeStateGuard,
  restoreLatestDate,
} from './state-guard.ts';
export type {
  StateGuard,
  StateGuardOptions,
  StateGuardStats,
  StateLoss,
  StateLossKind,
  StateRestore,
} from './state-guard.ts';
export {
  DEFAULT_TOPICS,
  MASSIVE_CLIENT_DEFAULTS,
  MASSIVE_STOCKS_URL,
  createMassiveClient,
} from './massive-client.ts';
export type {
  MassiveClient,
  MassiveClientOptions,
  MassiveClientState,
  MassiveClientStats,
} from './massive-client.ts';
export { createBatchPublisher } from './publisher.ts';
export type { BatchPublisher, BatchPublisherOptions, BatchPublisherStats } from './publisher.ts';
export { createBatchConsumer } from './consumer.ts';
export type {
  BatchConsumer,
  BatchConsumerOptions,
  BatchConsumerStats,
  DeliveryInfo,
} from './consumer.ts';
export {
  EVENTS_HEADER,
  assertEventExchange,
  assertTopology,
  deleteTopology,
  connectRecovering,
  deadLetterExchangeName,
  readDeadLetter,
} from './topology.ts';
export type {
  DeadLetter,
  RecoveringConnection,
  RecoveringConnectionOptions,
  Topology,
  TopologyOptions,
} from './topology.ts';
export { fetchPrevCloses, parsePrevCloses } from './prev-close.ts';
export type { PrevCloseOptions, PrevCloses } from './prev-close.ts';
export {
  DURATION_BUCKETS_SECONDS,
  METER_NAME,
  createDurationHistogram,
  observableCounter,
  observableGauge,
  observeBatch,
  openbellMeter,
} from './instruments.ts';
export { observeListener } from './pipeline-metrics.ts';
export type { ListenerParts } from './pipeline-metrics.ts';
export { parseTelemetryEnv, startTelemetry } from './telemetry.ts';
export type { Telemetry, TelemetryOptions } from './telemetry.ts';
export { contextFromHeaders, createLinkRing, openbellTracer, traceHeaders } from './tracing.ts';
export type { LinkRing } from './tracing.ts';
export { pruneDeadTargets, registerScrapeTarget } from './scrape-target.ts';
export type { ScrapeTarget } from './scrape-target.ts';
