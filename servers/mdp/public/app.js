// The live trader page: one WebSocket to the feed (servers/mdp/FEED.md), five boards and one
// watched symbol. Plain browser modules, no build step, no third-party code.

import { createBoards } from './boards.js';
import { $, clearFlashesWhenDone } from './dom.js';
import { IDLE_PING_MS, createFeedClient } from './feed-client.js';
import { SYMBOL, createSymbolPanel } from './symbol.js';

const TOKEN_KEY = 'openbell.token';
const SYMBOL_KEY = 'openbell.symbol';

const STATUS_TEXT = {
  connecting: 'connecting…',
  live: 'live',
  reconnecting: 'reconnecting…',
  'auth-failed': 'auth failed',
};

/** sessionStorage, or memory where the browser refuses it (some privacy modes). */
const store = (() => {
  const memory = new Map();
  return {
    get(key) {
      try {
        return sessionStorage.getItem(key) ?? '';
      } catch {
        return memory.get(key) ?? '';
      }
    },
    set(key, value) {
      memory.set(key, value);
      try {
        if (value === '') sessionStorage.removeItem(key);
        else sessionStorage.setItem(key, value);
      } catch {
        // Storage refused: the in-memory copy lasts as long as the page.
      }
    },
  };
})();

/**
 * Moves a `#token=…` from the address bar into session storage, so it is neither left in view nor
 * kept in history. (A fragment never reaches the server; a query string would reach its logs.)
 */
function takeTokenFromFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get('token');
  if (token === null) return;
  params.delete('token');
  const rest = params.toString();
  history.replaceState(null, '', `${location.pathname}${location.search}${rest ? `#${rest}` : ''}`);
  if (token.trim() !== '') store.set(TOKEN_KEY, token.trim());
}

function notice(text) {
  const node = $('[data-testid="notice"]');
  node.textContent = text;
  node.hidden = text === '';
}

function showStatus(status, detail) {
  const node = $('[data-testid="status"]');
  node.dataset.state = status;
  node.textContent = detail ? `${STATUS_TEXT[status]} (${detail})` : STATUS_TEXT[status];
  if (status === 'live') notice('');
  if (status === 'auth-failed') {
    notice(
      store.get(TOKEN_KEY)
        ? 'The feed refused the token (expired or invalid): paste a new one above.'
        : 'This feed needs a token: paste one above, or open the page with #token=….',
    );
  }
}

function start() {
  takeTokenFromFragment();
  let symbol = '';
  const boards = createBoards($('[data-testid="boards"]'), $('#board-template'), (date) => {
    $('[data-testid="date"]').textContent = date;
  });
  const panel = createSymbolPanel($('[data-testid="symbol-state"]'));

  const onMessage = ({ type, channel, data }) => {
    if (type === 'error') return showError(data ?? {});
    if (type !== 'snapshot' && type !== 'update') return;
    if (channel.startsWith('board:')) boards.apply(channel.slice(6), { type, data });
    // Late messages of a symbol no longer watched are dropped here.
    else if (symbol !== '' && channel === `symbol:${symbol}`) panel.show(data);
  };

  const showError = (data) => {
    const text = `${data.code ?? 'error'}: ${data.message ?? ''}`;
    const channel = typeof data.channel === 'string' ? data.channel : '';
    if (data.id === 'symbol' || (symbol !== '' && channel === `symbol:${symbol}`)) {
      panel.message(symbol, text);
    } else if (channel.startsWith('board:') && boards.has(channel.slice(6))) {
      boards.showError(channel.slice(6), text);
    } else {
      notice(text);
    }
  };

  const feed = createFeedClient({
    url: `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`,
    token: () => store.get(TOKEN_KEY),
    subscriptions: () => [
      { op: 'subscribe', channels: boards.channels, id: 'boards' },
      ...(symbol === '' ? [] : [{ op: 'subscribe', channels: [`symbol:${symbol}`], id: 'symbol' }]),
    ],
    onStatus: showStatus,
    onMessage,
    onGap: (_channel, gaps) => {
      document.body.dataset.gaps = String(gaps);
    },
  });

  const watch = (input) => {
    const sym = input.trim().toUpperCase();
    if (sym === '' || sym === symbol) return;
    if (!SYMBOL.test(sym)) {
      panel.message(symbol, `"${sym}" is not a ticker the feed knows.`);
      return;
    }
    if (symbol !== '') feed.unsubscribe([`symbol:${symbol}`], 'unwatch');
    symbol = sym;
    store.set(SYMBOL_KEY, sym);
    panel.message(sym, `Waiting for ${sym}…`);
    feed.subscribe([`symbol:${sym}`], 'symbol');
  };

  const ageNode = $('[data-testid="age"]');
  const showAge = () => {
    const at = feed.lastMessageAt();
    if (at === 0) return;
    const idleMs = Date.now() - at;
    ageNode.textContent = `data ${Math.floor(idleMs / 1000)} s old`;
    ageNode.classList.toggle('stale', idleMs > IDLE_PING_MS);
  };

  wireForms(watch, () => feed.connect());
  const remembered = store.get(SYMBOL_KEY);
  if (SYMBOL.test(remembered)) {
    $('[data-testid="symbol-input"]').value = remembered;
    symbol = remembered;
    panel.message(symbol, `Waiting for ${symbol}…`);
  }
  clearFlashesWhenDone();
  setInterval(showAge, 250);
  feed.connect();
}

/** The token form (use, forget) and the symbol search. */
function wireForms(watch, reconnect) {
  const tokenInput = $('[data-testid="token-input"]');
  $('[data-testid="token-form"]').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = tokenInput.value.trim();
    if (token === '') return;
    tokenInput.value = '';
    store.set(TOKEN_KEY, token);
    notice('');
    reconnect();
  });
  $('[data-testid="token-forget"]').addEventListener('click', () => {
    store.set(TOKEN_KEY, '');
    notice('');
    reconnect();
  });
  const symbolInput = $('[data-testid="symbol-input"]');
  $('[data-testid="symbol-form"]').addEventListener('submit', (event) => {
    event.preventDefault();
    symbolInput.value = symbolInput.value.trim().toUpperCase();
    watch(symbolInput.value);
  });
}

start();
