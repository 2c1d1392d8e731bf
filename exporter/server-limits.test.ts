import type { ServerResponse } from 'node:http';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExporterConfig } from './config.ts';
import { createExporter, type Exporter } from './server.ts';
import { ownMetrics, probe, sampleValue, TestTargets } from './test-helpers.ts';

const log = pino({ level: 'silent' });
const MiB = 1024 * 1024;

/** `{"items":[{"i":0,"v":1},…]}` of about `bytes` bytes, or of exactly `count` items. */
function itemsDocument(size: { bytes: number } | { count: number }): Buffer {
  const parts = ['{"items":['];
  let length = 0;
  for (let i = 0; 'count' in size ? i < size.count : length < size.bytes; i++) {
    const item = `${i === 0 ? '' : ','}{"i":${i},"v":1}`;
    parts.push(item);
    length += item.length;
  }
  parts.push(']}');
  return Buffer.from(parts.join(''));
}

/** `{"counts":{"k0":1,"k1":1,…}}` of about `bytes` bytes. */
function keysDocument(bytes: number): Buffer {
  const parts = ['{"counts":{'];
  for (let i = 0, length = 0; length < bytes; i++) {
    const entry = `${i === 0 ? '' : ','}"k${i}":1`;
    parts.push(entry);
    length += entry.length;
  }
  parts.push('}}');
  return Buffer.from(parts.join(''));
}

const sendJson = (res: ServerResponse, body: Buffer | string): void =>
  void res.writeHead(200, { 'content-type': 'application/json' }).end(body);

const failures = (text: string, reason: string): number | undefined =>
  sampleValue(text, `openbell_exporter_probe_failures_total{module="m",reason="${reason}"}`);

describe('exporter limits, at their defaults', () => {
  const targets = new TestTargets();
  const documents = new Map<string, Buffer | string>();
  let exporter: Exporter;
  let base = '';
  /** Bytes the endless target wrote, and whether its response was closed under it. */
  const endless = { written: 0, closed: Promise.withResolvers<void>() };

  beforeAll(async () => {
    documents.set('/huge-items', itemsDocument({ bytes: 16_000_000 }));
    documents.set('/huge-keys', keysDocument(16_000_000));
    documents.set('/10000-items', itemsDocument({ count: 10_000 }));
    documents.set('/10001-items', itemsDocument({ count: 10_001 }));
    const long = (n: number, c = 'x'): string => c.repeat(n);
    documents.set(
      '/labels',
      JSON.stringify({
        items: [
          { i: 'short', v: 1 },
          { i: long(1024), v: 2 },
          { i: long(1025), v: 3 },
          { i: long(342, '€'), v: 4 }, // 342 characters, 1026 bytes
        ],
        counts: { ok: 1, [long(2000)]: 2 },
      }),
    );
    base = await targets.start((req, res) => {
      if (req.url === '/endless') {
        // Never ends: a fetch that buffered the whole body first would never finish.
        res.writeHead(200, { 'content-type': 'application/json' });
        res.on('close', () => endless.closed.resolve());
        const chunk = Buffer.alloc(64 * 1024, ' ');
        const write = (): void => {
          while (!res.destroyed) {
            endless.written += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', write);
          }
        };
        res.write('{"pad":"');
        return write();
      }
      if (req.url === '/declared-gigabyte') {
        // Says 1 GiB, sends 10 bytes and stalls: the Content-Length alone must fail the probe.
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': 1024 * MiB });
        return void res.write('{"items":[');
      }
      const document = documents.get(req.url ?? '');
      if (document === undefined) return void res.writeHead(404).end();
      sendJson(res, document);
    });
    const config = parseExporterConfig({
      modules: {
        m: {
          timeoutMs: 20_000,
          metrics: [
            {
              name: 'item',
              type: 'object',
              path: '{.items[*]}',
              labels: { id: '{.i}' },
              values: { v: '{.v}' },
            },
            { name: 'count', type: 'object', path: '{.counts}', keyLabel: 'key' },
          ],
        },
      },
    });
    exporter = createExporter({ config, baseDir: '.', host: '127.0.0.1', port: 0, log });
    await exporter.start();
  });

  afterAll(async () => {
    await exporter?.close();
    await targets.close();
  });

  it('fails a 16 MB document of ~850,000 would-be series cleanly, before building them', async () => {
    const { status, text } = await probe(exporter, 'm', `${base}/huge-items`);
    expect(status).toBe(200);
    expect(text).toContain('probe_success 0\n');
    expect(text).toContain('probe_http_status_code 200\n');
    expect(text).not.toMatch(/^item_v/m);
    expect(text.length).toBeLessThan(4096);
    // ~1.1 M object keys as labels: the same.
    const keys = await probe(exporter, 'm', `${base}/huge-keys`);
    expect(keys.text).toContain('probe_success 0\n');
    expect(keys.text).not.toMatch(/^count\{/m);
    expect(failures(await ownMetrics(exporter), 'too_many_series')).toBe(2);
  });

  it('answers 10,000 series (maxSeries) and fails at 10,001', async () => {
    const full = await probe(exporter, 'm', `${base}/10000-items`);
    expect(full.text).toContain('probe_success 1\n');
    expect(full.text.match(/^item_v\{/gm)).toHaveLength(10_000);
    const over = await probe(exporter, 'm', `${base}/10001-items`);
    expect(over.text).toContain('probe_success 0\n');
    expect(over.text).not.toMatch(/^item_v/m);
  });

  it('cuts off an endless body at maxBodyBytes (16 MiB) and drops the connection', async () => {
    const { text } = await probe(exporter, 'm', `${base}/endless`);
    expect(text).toContain('probe_success 0\n');
    expect(text).toContain('probe_http_status_code 200\n');
    await endless.closed.promise;
    expect(endless.written).toBeGreaterThan(16 * MiB);
    expect(failures(await ownMetrics(exporter), 'body_too_large')).toBe(1);
  });

  it('fails a body whose Content-Length is over maxBodyBytes without waiting for it', async () => {
    const { text } = await probe(exporter, 'm', `${base}/declared-gigabyte`);
    expect(text).toContain('probe_success 0\n');
    const own = await ownMetrics(exporter);
    expect(failures(own, 'body_too_large')).toBe(2);
    expect(failures(own, 'timeout')).toBe(0);
  });

  it('drops and counts series whose label value is over maxLabelValueBytes (1024)', async () => {
    const { text } = await probe(exporter, 'm', `${base}/labels`);
    expect(text).toContain('probe_success 1\n');
    expect(text).toContain('item_v{id="short"} 1\n');
    expect(text).toContain(`item_v{id="${'x'.repeat(1024)}"} 2\n`);
    expect(text).toContain('count{key="ok"} 1\n');
    expect(text.match(/^(item_v|count)\{/gm)).toHaveLength(3);
    expect(sampleValue(text, 'probe_skipped_values{reason="label_value_too_long"}')).toBe(3);
    expect(
      sampleValue(
        await ownMetrics(exporter),
        'openbell_exporter_dropped_series_total{module="m",reason="label_value_too_long"}',
      ),
    ).toBe(3);
  });
});

describe('exporter limits, as configured', () => {
  const targets = new TestTargets();
  let base = '';

  beforeAll(async () => {
    base = await targets.start((_req, res) =>
      sendJson(res, JSON.stringify({ items: [{ i: 'ab', v: 1 }, { i: 'abcde', v: 2 }, { v: 3 }] })),
    );
  });
  afterAll(() => targets.close());

  const metrics = [
    {
      name: 'item',
      type: 'object',
      path: '{.items[*]}',
      labels: { id: '{.i}' },
      values: { v: '{.v}' },
    },
  ];

  it('honours maxSeries, maxLabelValueBytes and maxBodyBytes', async () => {
    const config = parseExporterConfig({ modules: { m: { metrics } } });
    const answers: string[] = [];
    for (const limits of [
      { maxLabelValueBytes: 4 },
      { maxLabelValueBytes: 4, maxSeries: 1 },
      { maxBodyBytes: 16 },
    ]) {
      const exporter = createExporter({
        config,
        baseDir: '.',
        host: '127.0.0.1',
        port: 0,
        log,
        ...limits,
      });
      await exporter.start();
      try {
        answers.push((await probe(exporter, 'm', `${base}/`)).text);
      } finally {
        await exporter.close();
      }
    }
    expect(answers[0]).toContain('item_v{id="ab"} 1\nitem_v{id=""} 3\n');
    expect(answers[0]).toContain('probe_skipped_values{reason="label_value_too_long"} 1\n');
    expect(answers[1]).toContain('probe_success 0\n');
    expect(answers[2]).toContain('probe_success 0\n');
  });

  it('refuses a limit out of range, naming it', () => {
    const config = parseExporterConfig({ modules: { m: { metrics } } });
    expect(() =>
      createExporter({ config, baseDir: '.', host: '127.0.0.1', port: 0, log, maxSeries: 0 }),
    ).toThrow('maxSeries: expected a whole number >= 1, got 0');
  });
});
