import type { Meter } from '@opentelemetry/api';
import type { Analyzer } from './analyzer.ts';
import type { DecodeCounts } from './decode.ts';
import {
  observableCounter as counter,
  observableGauge as gauge,
  observeBatch as observe,
} from './instruments.ts';
import type { Listener } from './listener.ts';
import type { MassiveClient } from './massive-client.ts';
import type { BatchPublisher } from './publisher.ts';

/** The parts of the mdp's intake the listener metrics read. */
export interface ListenerParts {
  client: Pick<MassiveClient, 'stats' | 'state'>;
  listener: Pick<Listener, 'stats'>;
  publisher: Pick<BatchPublisher, 'stats'>;
  decodeCounts: Readonly<DecodeCounts>;
}

/** Massive frames, events by type, decode errors, the listener buffer and the batch publisher. */
export function observeListener(meter: Meter, parts: ListenerParts): () => void {
  const m = {
    frames: counter(meter, 'openbell_massive_frames', 'WebSocket frames received'),
    bytes: counter(meter, 'openbell_massive_bytes', 'Bytes of the frames received'),
    connected: gauge(meter, 'openbell_massive_connected', '1 while the feed streams'),
    reconnects: counter(
      meter,
      'openbell_massive_reconnects',
      'Connection attempts after the first',
    ),
    events: counter(meter, 'openbell_events_received', 'Events decoded, by type'),
    decode: counter(meter, 'openbell_decode_errors', 'Frame elements dropped by the decoder'),
    buffered: gauge(meter, 'openbell_listener_buffered_events', 'Events waiting for the broker'),
    published: counter(meter, 'openbell_batches_published', 'Batches handed to RabbitMQ'),
    confirmed: counter(meter, 'openbell_batches_confirmed', 'Batches RabbitMQ confirmed'),
    inFlight: gauge(meter, 'openbell_publisher_in_flight', 'Batches awaiting a confirm'),
    resent: counter(
      meter,
      'openbell_batches_resent',
      'Batches published again after their connection dropped before the confirm',
    ),
    dropped: counter(meter, 'openbell_dropped_events', 'Events lost, by stage and reason'),
    droppedBatches: counter(meter, 'openbell_dropped_batches', 'Batches lost, by stage and reason'),
  };
  const { client, listener, publisher, decodeCounts } = parts;
  return observe(meter, Object.values(m), (o) => {
    o.observe(m.frames, client.stats.frames);
    o.observe(m.bytes, client.stats.bytes);
    o.observe(m.connected, client.state === 'streaming' ? 1 : 0);
    o.observe(m.reconnects, client.stats.reconnects);
    for (const [type, n] of Object.entries(listener.stats.events)) o.observe(m.events, n, { type });
    for (const [reason, n] of Object.entries(decodeCounts)) o.observe(m.decode, n, { reason });
    o.observe(m.buffered, listener.stats.bufferedEvents);
    o.observe(m.published, publisher.stats.published);
    o.observe(m.confirmed, publisher.stats.confirmed);
    o.observe(m.inFlight, publisher.stats.inFlight);
    const drop = (stage: string, reason: string, n: number): void =>
      o.observe(m.dropped, n, { stage, reason });
    drop('listener', 'buffer_full', listener.stats.droppedEvents);
    drop('listener', 'closed', listener.stats.closedEvents);
    drop('publisher', 'unroutable', publisher.stats.unroutableEvents);
    drop('publisher', 'nacked', publisher.stats.nackedEvents);
    drop('publisher', 'lost', publisher.stats.lostEvents);
    o.observe(m.droppedBatches, publisher.stats.nacked, { stage: 'publisher', reason: 'nacked' });
    o.observe(m.droppedBatches, publisher.stats.lost, { stage: 'publisher', reason: 'lost' });
    o.observe(m.resent, publisher.stats.resent);
  });
}

/** Consumption, application, broker drops (dead letters), queue depth and board publication. */
export function observeAnalyzer(meter: Meter, analyzer: Analyzer): () => void {
  const m = {
    consumed: counter(meter, 'openbell_batches_consumed', "Deliveries from the group's queue"),
    acked: counter(meter, 'openbell_batches_acked', 'Deliveries acknowledged'),
    redelivered: counter(meter, 'openbell_batches_redelivered', 'Deliveries flagged redelivered'),
    retries: counter(meter, 'openbell_batch_retries', 'Failed applies retried'),
    inFlight: gauge(meter, 'openbell_consumer_in_flight', 'Deliveries held and not yet acked'),
    connected: gauge(meter, 'openbell_consumer_connected', '1 while consuming'),
    depth: gauge(meter, 'openbell_queue_depth', "Messages ready in the group's queues"),
    events: counter(meter, 'openbell_events_consumed', 'Events in consumed batches'),
    applied: counter(meter, 'openbell_events_applied', 'Events that moved a board, by type'),
    skipped: counter(meter, 'openbell_events_skipped', 'Events skipped, by reason'),
    errors: counter(meter, 'openbell_apply_errors', 'Failed board applies'),
    dropped: counter(meter, 'openbell_dropped_events', 'Events lost, by stage and reason'),
    ledgerApplied: gauge(
      meter,
      'openbell_ledger_applied_events',
      "Events applied exactly once on the newest date, from Redis's ledger (same in every analyzer)",
    ),
    ledgerDropped: gauge(
      meter,
      'openbell_ledger_dropped_events',
      "Events dropped after the listener on the newest date, from Redis's ledger, by stage and reason",
    ),
    boards: counter(meter, 'openbell_board_updates_published', 'Board updates published'),
    boardErrors: counter(meter, 'openbell_board_publish_errors', 'Failed publication rounds'),
  };
  const { stats } = analyzer;
  const consumer = analyzer.consumer.stats;
  const boards = analyzer.publisher.stats;
  return observe(meter, Object.values(m), (o) => {
    o.observe(m.consumed, consumer.consumed);
    o.observe(m.acked, consumer.acked);
    o.observe(m.redelivered, consumer.redelivered);
    o.observe(m.retries, consumer.retries);
    o.observe(m.inFlight, consumer.inFlight);
    o.observe(m.connected, consumer.connected ? 1 : 0);
    for (const [kind, depth] of Object.entries(consumer.queueDepth)) {
      if (depth !== undefined) o.observe(m.depth, depth.messages, { queue: depth.queue, kind });
    }
    o.observe(m.events, stats.events);
    o.observe(m.applied, stats.aggregates, { type: 'aggregate' });
    o.observe(m.applied, stats.trades, { type: 'trade' });
    o.observe(m.skipped, stats.duplicates, { reason: 'duplicate' });
    o.observe(m.skipped, stats.ignored, { reason: 'ignored' });
    o.observe(m.errors, stats.applyErrors);
    o.observe(m.dropped, stats.dropped, { stage: 'analyzer', reason: 'malformed' });
    o.observe(m.dropped, stats.undecodableEvents, { stage: 'analyzer', reason: 'undecodable' });
    const ledger = analyzer.ledger;
    if (ledger !== undefined) {
      o.observe(m.ledgerApplied, ledger.applied, { date: ledger.date });
      for (const [key, n] of Object.entries(ledger.dropped)) {
        const [stage = key, reason = ''] = key.split('/');
        o.observe(m.ledgerDropped, n, { date: ledger.date, stage, reason });
      }
    }
    // Every reason exists at 0 from the start, so a run's first drop shows as an increase.
    const dead = {
      expired: 0,
      maxlen: 0,
      rejected: 0,
      delivery_limit: 0,
      ...consumer.deadLettered,
    };
    for (const [reason, n] of Object.entries(dead))
      o.observe(m.dropped, n, { stage: 'broker', reason });
    o.observe(m.boards, boards.published);
    o.observe(m.boardErrors, boards.errors);
  });
}
