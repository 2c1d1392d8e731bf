// The page's side of the feed protocol (servers/mdp/FEED.md): one socket, reconnection with
// backoff, per-channel seq checks with a resubscribe on a gap, and a watchdog for silent sockets.

const SUBPROTOCOL = 'openbell.v1';
const BEARER = 'bearer.';
/** Close code of a missing, bad or expired token: reconnecting would only fail again. */
const CLOSE_UNAUTHORIZED = 4401;
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30_000;
/** The feed sends a heartbeat every 15 s: past this much silence ask, past more give up. */
export const IDLE_PING_MS = 20_000;
const IDLE_DEAD_MS = 45_000;

/**
 * Creates the client. `token()` is read at each connect (empty: none, for an insecure feed);
 * `subscriptions()` lists the subscribe messages to send on every (re)connect. It reports through
 * `onStatus(status, detail)` (`connecting`, `live`, `reconnecting`, `auth-failed`), hands every
 * envelope that is in sequence to `onMessage`, and counts seq gaps through `onGap`.
 */
export function createFeedClient({ url, token, subscriptions, onStatus, onMessage, onGap }) {
  let socket = null;
  let attempt = 0;
  let reconnectTimer;
  let live = false;
  let pinged = false;
  let lastMessageAt = 0;
  /** When this socket last showed signs of life (opened, or a message). */
  let heardAt = 0;
  let watchTimer;
  let gaps = 0;
  /** Last seq per channel on this connection. */
  const seqs = new Map();
  /** Channels resubscribed after a seq gap, waiting for their fresh snapshot. */
  const resyncing = new Set();

  const send = (message) => {
    if (socket !== null && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(message));
    }
  };

  /** Forgets a socket: its late events are ignored from now on. */
  const drop = (old) => {
    old.onopen = old.onmessage = old.onclose = old.onerror = null;
    if (socket === old) socket = null;
    try {
      old.close(1000);
    } catch {
      // Already closing or closed: nothing left to release.
    }
  };

  const setLive = (value, status, detail) => {
    live = value;
    onStatus(status, detail);
  };

  const open = () => {
    clearTimeout(reconnectTimer);
    if (socket !== null) drop(socket);
    const bearer = token();
    let opened;
    try {
      opened = new WebSocket(url, bearer ? [SUBPROTOCOL, BEARER + bearer] : [SUBPROTOCOL]);
    } catch {
      // The browser refuses a token with characters a subprotocol cannot carry.
      setLive(false, 'auth-failed', 'malformed token');
      return;
    }
    socket = opened;
    seqs.clear();
    resyncing.clear();
    pinged = false;
    setLive(false, attempt === 0 ? 'connecting' : 'reconnecting');
    opened.onopen = () => {
      heardAt = Date.now();
      for (const message of subscriptions()) send(message);
    };
    opened.onmessage = (event) => {
      if (typeof event.data === 'string') receive(event.data);
    };
    opened.onclose = (event) => {
      drop(opened);
      if (event.code === CLOSE_UNAUTHORIZED) setLive(false, 'auth-failed', event.reason);
      else scheduleReconnect(event.code === 1006 ? undefined : `closed ${event.code}`);
    };
    // An error is always followed by a close, which decides what to do.
    opened.onerror = () => undefined;
  };

  const scheduleReconnect = (detail) => {
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** attempt);
    // Jitter: pages reconnecting after a restart spread out instead of arriving at once.
    const delayMs = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    attempt++;
    setLive(false, 'reconnecting', detail);
    reconnectTimer = setTimeout(open, delayMs);
  };

  const receive = (text) => {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return; // Nothing to repair: the next snapshot or update carries the state again.
    }
    if (message === null || typeof message !== 'object') return;
    lastMessageAt = heardAt = Date.now();
    pinged = false;
    if (!live && (message.type === 'ack' || message.type === 'snapshot')) {
      attempt = 0;
      setLive(true, 'live');
    }
    if (message.type === 'snapshot' || message.type === 'update') {
      if (!inSequence(message)) return;
    }
    onMessage(message);
  };

  /**
   * A snapshot sets the channel's seq; an update must be the next one. On a jump the channel is
   * resubscribed, and its updates are ignored until the fresh snapshot arrives.
   */
  const inSequence = ({ type, channel, seq }) => {
    if (typeof channel !== 'string' || !Number.isSafeInteger(seq)) return false;
    if (type === 'snapshot') {
      seqs.set(channel, seq);
      resyncing.delete(channel);
      return true;
    }
    const last = seqs.get(channel);
    // Before its snapshot, an update belongs to an earlier subscription: the snapshot supersedes it.
    if (last === undefined || resyncing.has(channel)) return false;
    if (seq <= last) return false; // a repeat: already applied
    if (seq !== last + 1) {
      resyncing.add(channel);
      // Unsubscribe first, so the subscribe is certain to be answered with a snapshot.
      send({ op: 'unsubscribe', channels: [channel], id: 'resync' });
      send({ op: 'subscribe', channels: [channel], id: 'resync' });
      onGap(channel, ++gaps);
      return false;
    }
    seqs.set(channel, seq);
    return true;
  };

  /** Called every second: pings a quiet socket, and replaces one that stays silent. */
  const watch = () => {
    if (socket === null || socket.readyState !== WebSocket.OPEN) return;
    const idleMs = Date.now() - heardAt;
    if (idleMs > IDLE_DEAD_MS) {
      // No heartbeat and no answer to our ping: the connection is dead even if the socket is not.
      drop(socket);
      scheduleReconnect('no data');
    } else if (idleMs > IDLE_PING_MS && !pinged) {
      pinged = true;
      send({ op: 'ping', id: 'idle' });
    }
  };

  return {
    /** Connects now, with a fresh backoff (also after a new token). */
    connect() {
      attempt = 0;
      watchTimer ??= setInterval(watch, 1000);
      open();
    },
    subscribe(channels, id) {
      send({ op: 'subscribe', channels, id });
    },
    unsubscribe(channels, id) {
      for (const channel of channels) {
        seqs.delete(channel);
        resyncing.delete(channel);
      }
      send({ op: 'unsubscribe', channels, id });
    },
    /** Epoch ms of the last message, 0 before any. */
    lastMessageAt: () => lastMessageAt,
  };
}
