import type { Meter } from '@opentelemetry/api';
import { observableCounter, observableGauge, observeBatch } from '../../core/index.ts';
import type { FeedStats } from './feed.ts';

/** The feed's counters as observable instruments, read at scrape time (docs/METRICS.md). */
export function observeFeed(meter: Meter, stats: () => FeedStats): () => void {
  const counter = (name: string, description: string) =>
    observableCounter(meter, name, description);
  const m = {
    clients: observableGauge(meter, 'openbell_feed_clients', 'Connected traders'),
    pending: observableGauge(
      meter,
      'openbell_feed_pending_handshakes',
      'Connections that have not sent their request headers yet',
    ),
    addresses: observableGauge(
      meter,
      'openbell_feed_addresses',
      'Client address buckets (IPv4 addresses, IPv6 /64s) holding a connection',
    ),
    connections: counter('openbell_feed_connections', 'Connections accepted'),
    rejected: counter('openbell_feed_rejected', 'Connections refused, by reason'),
    sent: counter('openbell_feed_messages_sent', 'Messages sent'),
    bytes: counter('openbell_feed_bytes_sent', 'Bytes sent'),
    received: counter('openbell_feed_messages_received', 'Client messages'),
    snapshots: counter('openbell_feed_snapshots', 'Snapshots sent'),
    updates: counter('openbell_feed_updates', 'Updates sent'),
    conflations: counter('openbell_feed_conflations', 'Updates a slow client did not get'),
    closes: counter('openbell_feed_closes', 'Server closes, by reason'),
    errors: counter('openbell_feed_errors', 'Error messages sent, by code'),
    tickErrors: counter('openbell_feed_tick_errors', 'Failed ticks'),
  };
  return observeBatch(meter, Object.values(m), (o) => {
    const s = stats();
    o.observe(m.clients, s.clients);
    o.observe(m.pending, s.pendingHandshakes);
    o.observe(m.addresses, s.addresses);
    o.observe(m.connections, s.connections);
    o.observe(m.rejected, s.rejected.origin, { reason: 'origin' });
    o.observe(m.rejected, s.rejected.perIp, { reason: 'per_ip' });
    o.observe(m.rejected, s.rejected.perSubject, { reason: 'per_subject' });
    o.observe(m.rejected, s.rejected.path, { reason: 'path' });
    o.observe(m.rejected, s.rejected.headerTimeout, { reason: 'header_timeout' });
    o.observe(m.rejected, s.authFailures, { reason: 'auth' });
    o.observe(m.rejected, s.handshakeTimeouts, { reason: 'handshake_timeout' });
    o.observe(m.sent, s.messagesOut);
    o.observe(m.bytes, s.bytesOut);
    o.observe(m.received, s.messagesIn);
    o.observe(m.snapshots, s.snapshots);
    o.observe(m.updates, s.updates);
    o.observe(m.conflations, s.conflations);
    o.observe(m.closes, s.slowCloses, { reason: 'slow' });
    o.observe(m.closes, s.abuseCloses, { reason: 'abuse' });
    o.observe(m.closes, s.deadPeers, { reason: 'dead_peer' });
    for (const [code, n] of Object.entries(s.errors)) o.observe(m.errors, n ?? 0, { code });
    o.observe(m.tickErrors, s.tickErrors);
  });
}
