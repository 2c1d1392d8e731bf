import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, OpenbellError, ServiceError } from './errors.ts';
import { fetchPrevCloses, parsePrevCloses } from './prev-close.ts';

const fixture = (name: string): unknown =>
  JSON.parse(readFileSync(new URL(`../fixtures/massive/rest/${name}`, import.meta.url), 'utf8'));
const grouped = readFileSync(
  new URL('../fixtures/massive/rest/grouped-daily-2005-04-04.json', import.meta.url),
  'utf8',
);
const KEY = 'sekret-KEY-1234567890';

describe('parsePrevCloses', () => {
  it('reads a Massive grouped-daily response', () => {
    const out = parsePrevCloses(fixture('grouped-daily-2005-04-04.json'), '2005-04-05', 'f.json');
    expect(out).toEqual({
      date: '2005-04-05',
      source: 'f.json',
      closes: new Map([['GIK', 10.02]]),
      skipped: 0,
    });
  });

  it('reads the per-ticker previous-close response, which has the same shape', () => {
    const out = parsePrevCloses(fixture('prev-AAPL.json'), '2022-04-28', 'prev');
    expect([...out.closes]).toEqual([['AAPL', 156.8]]);
  });

  it('reads the recording metadata form {"SYM": close}', () => {
    const out = parsePrevCloses({ AAPL: 190.5, 'BRK.B': 401.25 }, '2026-11-24', 'meta');
    expect([...out.closes]).toEqual([
      ['AAPL', 190.5],
      ['BRK.B', 401.25],
    ]);
    expect(out.skipped).toBe(0);
  });

  it('skips and counts rows without a symbol or with a close that is not a positive number', () => {
    const results = [
      { T: 'AAPL', c: 190.5 },
      { c: 10 },
      { T: '', c: 10 },
      { T: 'ZERO', c: 0 },
      { T: 'NEG', c: -1 },
      { T: 'STR', c: '12.5' },
      { T: 'NOC' },
      null,
      { T: 'MSFT', c: 410 },
    ];
    const out = parsePrevCloses({ results }, '2026-11-24', 'x');
    expect([...out.closes.keys()]).toEqual(['AAPL', 'MSFT']);
    expect(out.skipped).toBe(7);
    const plain = parsePrevCloses(
      { A: 1, B: Number.NaN, C: Infinity, 'BAD KEY': 2 },
      '2026-11-24',
      'x',
    );
    expect([...plain.closes]).toEqual([['A', 1]]);
    expect(plain.skipped).toBe(3);
  });

  it('reads an empty grouped-daily response as no closes rather than symbols', () => {
    const out = parsePrevCloses({ resultsCount: 0, status: 'OK' }, '2026-11-24', 'x');
    expect(out.closes.size).toBe(0);
    expect(out.skipped).toBe(0);
  });

  it('rejects JSON of another shape with a ConfigError naming the source', () => {
    expect(() => parsePrevCloses([1, 2], '2026-11-24', 'meta.json')).toThrow(ConfigError);
    expect(() => parsePrevCloses('x', '2026-11-24', 'meta.json')).toThrow(/meta\.json/);
    expect(() => parsePrevCloses({}, '2026-13-xx', 'meta.json')).toThrow(/YYYY-MM-DD/);
  });
});

interface Seen {
  url: string;
  headers: IncomingHttpHeaders;
}

describe('fetchPrevCloses', () => {
  let server: Server | undefined;
  afterEach(async () => {
    await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
    server = undefined;
  });

  /** Serves `body` with `status` on 127.0.0.1, port 0; records each request. */
  async function serve(status: number, body: string): Promise<{ baseUrl: string; seen: Seen[] }> {
    const seen: Seen[] = [];
    server = createServer((request, response) => {
      seen.push({ url: request.url ?? '', headers: request.headers });
      response.writeHead(status, { 'content-type': 'application/json' }).end(body);
    });
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return { baseUrl: `http://127.0.0.1:${port}`, seen };
  }

  it('asks for the previous trading date with a Bearer key kept out of the URL', async () => {
    const { baseUrl, seen } = await serve(200, grouped);
    // 2026-11-26 is Thanksgiving: the close serving the 27th is the 25th's.
    const out = await fetchPrevCloses('2026-11-27', { apiKey: KEY, baseUrl: `${baseUrl}/` });
    expect(seen).toHaveLength(1);
    expect(seen[0]!.url).toBe('/v2/aggs/grouped/locale/us/market/stocks/2026-11-25?adjusted=true');
    expect(seen[0]!.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(seen[0]!.url).not.toContain(KEY);
    expect(out.date).toBe('2026-11-27');
    expect(out.source).not.toContain(KEY);
    expect([...out.closes]).toEqual([['GIK', 10.02]]);
  });

  it('turns HTTP 403 into a clear error that never contains the key', async () => {
    const body = JSON.stringify({ status: 'NOT_AUTHORIZED', message: `bad key ${KEY}` });
    const { baseUrl } = await serve(403, body);
    const error = await fetchPrevCloses('2026-11-24', { apiKey: KEY, baseUrl }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ServiceError);
    expect(error).toBeInstanceOf(OpenbellError);
    const message = (error as Error).message;
    expect(message).toContain('HTTP 403');
    expect(message).toContain('/v2/aggs/grouped/locale/us/market/stocks/2026-11-23');
    expect(message).toContain('NOT_AUTHORIZED');
    expect(message).not.toContain(KEY);
    expect(JSON.stringify(error)).not.toContain(KEY);
  });

  it('reports a refused connection, garbage and an empty day without the key', async () => {
    const { baseUrl } = await serve(200, 'not json');
    await expect(fetchPrevCloses('2026-11-24', { apiKey: KEY, baseUrl })).rejects.toThrow(
      /failed: .*JSON/,
    );
    server!.close();
    server!.closeAllConnections();
    const refused: unknown = await fetchPrevCloses('2026-11-24', { apiKey: KEY, baseUrl }).catch(
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(ServiceError);
    expect((refused as Error).message).toMatch(/failed: fetch failed/);
    expect((refused as Error).message).not.toContain(KEY);
    const empty = await serve(200, JSON.stringify({ resultsCount: 0, status: 'OK' }));
    await expect(
      fetchPrevCloses('2026-11-24', { apiKey: KEY, baseUrl: empty.baseUrl }),
    ).rejects.toThrow(/no results array/);
  });

  it('refuses an empty key before any request', async () => {
    const { baseUrl, seen } = await serve(200, grouped);
    await expect(fetchPrevCloses('2026-11-24', { apiKey: ' ', baseUrl })).rejects.toThrow(
      ConfigError,
    );
    expect(seen).toHaveLength(0);
  });
});
