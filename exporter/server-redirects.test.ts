import type { IncomingMessage, ServerResponse } from 'node:http';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadExporterConfig, parseExporterConfig } from './config.ts';
import { createExporter, type Exporter } from './server.ts';
import { ownMetrics, probe, sampleValue, TestTargets } from './test-helpers.ts';

const log = pino({ level: 'silent' });
const metrics = [{ name: 'doc_up', path: '{.status}', valueMap: { ok: 1 }, valuetype: 'gauge' }];

/** What a target saw of one request. */
interface Seen {
  url: string;
  method: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** A target that records every request, then answers `route(url)`: a redirect or a document. */
function recording(seen: Seen[], route: (url: string) => string | undefined) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const url = req.url ?? '';
      seen.push({ url, method: req.method ?? '', headers: req.headers, body });
      const [status, location] = (route(url) ?? '200').split(' ');
      if (status === '200')
        return void res
          .writeHead(200, { 'content-type': 'application/json' })
          .end('{"status":"ok"}');
      res.writeHead(Number(status), { location }).end();
    });
  };
}

const failures = (text: string, module: string, reason: string): number | undefined =>
  sampleValue(
    text,
    `openbell_exporter_probe_failures_total{module="${module}",reason="${reason}"}`,
  );

describe('exporter redirects', () => {
  const targets = new TestTargets();
  const home: Seen[] = [];
  const outside: Seen[] = [];
  let exporter: Exporter;
  let base = '';
  let away = '';

  beforeAll(async () => {
    away = await targets.start(recording(outside, () => undefined));
    base = await targets.start(
      recording(home, (url) => {
        if (url === '/hop') return '302 /doc';
        if (url === '/hop2') return '301 /hop';
        if (url === '/away') return `302 ${away}/doc`;
        if (url === '/away-after-hop') return '302 /away';
        if (url === '/loop') return '302 /loop';
        if (url === '/ftp') return '302 ftp://127.0.0.1/doc';
        if (url === '/see-other') return '303 /doc';
        if (url === '/found') return '302 /doc';
        if (url === '/temporary') return '307 /doc';
        return undefined;
      }),
    );
    const pinned = `${base.replaceAll('.', '\\.')}/.*`;
    const config = parseExporterConfig({
      modules: {
        pinned: { metrics, allowedTargets: [pinned] },
        open: {
          metrics,
          headers: { 'X-Scope': 'boards', Cookie: 'session=1' },
          http_client_config: { basic_auth: { username: 'ann', password: 's3cret' } },
        },
        post: { metrics, headers: { 'Content-Type': 'application/json' }, body: { content: '{}' } },
        stay: { metrics, http_client_config: { follow_redirects: false } },
      },
    });
    exporter = createExporter({ config, baseDir: '.', host: '127.0.0.1', port: 0, log });
    await exporter.start();
  });

  afterAll(async () => {
    await exporter?.close();
    await targets.close();
  });

  const urls = (seen: Seen[]): string[] => seen.splice(0).map((s) => s.url);

  it('follows redirects inside allowedTargets, hop by hop', async () => {
    urls(home);
    const { text } = await probe(exporter, 'pinned', `${base}/hop2`);
    expect(text).toContain('probe_success 1\n');
    expect(text).toContain('doc_up 1\n');
    expect(urls(home)).toEqual(['/hop2', '/hop', '/doc']);
  });

  it('fails a redirect outside allowedTargets without fetching it', async () => {
    for (const start of ['/away', '/away-after-hop']) {
      const { status, text } = await probe(exporter, 'pinned', `${base}${start}`);
      expect(status).toBe(200);
      expect(text).toContain('probe_success 0\n');
      expect(text).toContain('probe_http_status_code 302\n');
      expect(text).not.toContain('doc_up');
    }
    expect(outside).toEqual([]);
    expect(failures(await ownMetrics(exporter), 'pinned', 'redirect_not_allowed')).toBe(2);
    // Without allowedTargets the same redirect is followed: the target above was reachable.
    expect((await probe(exporter, 'open', `${base}/away`)).text).toContain('probe_success 1\n');
    expect(urls(outside)).toEqual(['/doc']);
  });

  it('fails a probe past maxRedirects (10 by default), the 11th never requested', async () => {
    urls(home);
    const { text } = await probe(exporter, 'open', `${base}/loop`);
    expect(text).toContain('probe_success 0\n');
    expect(urls(home)).toEqual(Array<string>(11).fill('/loop'));
    expect(failures(await ownMetrics(exporter), 'open', 'too_many_redirects')).toBe(1);
  });

  it('fails a redirect to a URL that is not http(s)', async () => {
    expect((await probe(exporter, 'open', `${base}/ftp`)).text).toContain('probe_success 0\n');
    expect(failures(await ownMetrics(exporter), 'open', 'bad_redirect')).toBe(1);
  });

  it("sends credentials and cookies only to the target's origin", async () => {
    home.length = 0;
    outside.length = 0;
    await probe(exporter, 'open', `${base}/away-after-hop`);
    const authorization = `Basic ${btoa('ann:s3cret')}`;
    expect(home.map((s) => [s.headers.authorization, s.headers.cookie])).toEqual([
      [authorization, 'session=1'],
      [authorization, 'session=1'],
    ]);
    expect(outside).toHaveLength(1);
    expect(outside[0]!.headers.authorization).toBeUndefined();
    expect(outside[0]!.headers.cookie).toBeUndefined();
    expect(outside[0]!.headers['x-scope']).toBe('boards');
  });

  it('turns a POST into a GET without body on 303 and 302, keeps it on 307', async () => {
    const hops: [string, string][] = [];
    for (const start of ['/see-other', '/found', '/temporary']) {
      home.length = 0;
      expect((await probe(exporter, 'post', `${base}${start}`)).text).toContain('doc_up 1\n');
      const last = home.at(-1)!;
      hops.push([last.method, `${last.body}|${last.headers['content-type'] ?? ''}`]);
    }
    expect(hops).toEqual([
      ['GET', '|'],
      ['GET', '|'],
      ['POST', '{}|application/json'],
    ]);
  });

  it('answers with the redirect itself when follow_redirects is false', async () => {
    urls(home);
    const { text } = await probe(exporter, 'stay', `${base}/hop`);
    expect(text).toContain('probe_success 0\n');
    expect(text).toContain('probe_http_status_code 302\n');
    expect(urls(home)).toEqual(['/hop']);
    expect(failures(await ownMetrics(exporter), 'stay', 'status')).toBe(1);
  });

  it("takes the allowedTargets option in place of the modules' own", async () => {
    const config = parseExporterConfig({
      modules: { pinned: { metrics, allowedTargets: [`${base.replaceAll('.', '\\.')}/.*`] } },
    });
    const other = createExporter({
      config,
      baseDir: '.',
      host: '127.0.0.1',
      port: 0,
      log,
      allowedTargets: [`${away.replaceAll('.', '\\.')}/.*`],
    });
    await other.start();
    try {
      expect((await probe(other, 'pinned', `${base}/doc`)).status).toBe(403);
      expect((await probe(other, 'pinned', `${away}/doc`)).text).toContain('probe_success 1\n');
    } finally {
      await other.close();
    }
  });
});

describe('exporter/openbell.yml', () => {
  const targets = new TestTargets();
  const seen: Seen[] = [];
  let exporter: Exporter;
  let base = '';

  beforeAll(async () => {
    base = await targets.start(
      recording(seen, (url) => (url === '/moved' ? '302 http://192.0.2.1:8080/health' : undefined)),
    );
    const { config, baseDir } = loadExporterConfig('exporter/openbell.yml');
    exporter = createExporter({ config, baseDir, host: '127.0.0.1', port: 0, log });
    await exporter.start();
  });

  afterAll(async () => {
    await exporter?.close();
    await targets.close();
  });

  it('probes loopback targets on any port, and nothing else', async () => {
    const port = new URL(base).port;
    expect((await probe(exporter, 'openbell', `${base}/health`)).text).toContain(
      'openbell_health_status 1\n',
    );
    for (const host of ['localhost', '[::1]', '127.0.0.1'])
      for (const target of [`http://${host}:${port}/health`, `https://${host}/health`])
        expect((await probe(exporter, 'openbell', target)).status, target).toBe(200);
    for (const target of [
      'http://192.0.2.1:8080/health',
      'http://mdp:8080/health',
      `http://127.0.0.1.nip.io:${port}/health`,
      `http://localhost.example:${port}/health`,
      `http://127.0.0.1:${port}@192.0.2.1/health`,
      'http://[::2]/health',
    ]) {
      const refused = await probe(exporter, 'openbell', target);
      expect(refused.status, target).toBe(403);
      expect(refused.text).toContain('target not allowed for module "openbell"');
    }
  });

  it('fails a redirect from a loopback target to anywhere else without following it', async () => {
    const { text } = await probe(exporter, 'openbell', `${base}/moved`);
    expect(text).toContain('probe_success 0\n');
    expect(
      sampleValue(
        await ownMetrics(exporter),
        'openbell_exporter_probe_failures_total{module="openbell",reason="redirect_not_allowed"}',
      ),
    ).toBe(1);
  });
});
