import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseExporterConfig } from './config.ts';
import { promtoolCheckMetrics } from './promtool.ts';
import { createExporter, type Exporter } from './server.ts';

const log = pino({ level: 'silent' });
const metrics = [
  { name: 'doc_up', path: '{.status}', valueMap: { ok: 1, degraded: 0 }, valuetype: 'gauge' },
  {
    name: 'doc_events_total',
    type: 'object',
    path: '{.events}',
    keyLabel: 'type',
    valuetype: 'counter',
  },
];
const DOC = { status: 'ok', events: { A: 5, T: 7 } };

/** A fake JSON target: records what it was sent and answers by path. */
function handler(seen: IncomingMessage[]) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    seen.push(req);
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      if (req.url === '/doc') return json(200, DOC);
      if (req.url === '/auth')
        return req.headers.authorization === `Basic ${btoa('ann:s3cret')}` &&
          req.headers['x-scope'] === 'boards'
          ? json(200, DOC)
          : json(401, { error: 'no' });
      if (req.url === '/echo')
        return json(200, { status: req.method === 'POST' && body === '{"q":1}' ? 'ok' : 'bad' });
      if (req.url === '/moved') return void res.writeHead(302, { location: '/doc' }).end();
      if (req.url === '/broken') return json(500, DOC);
      if (req.url === '/text') return void res.writeHead(200).end('hello');
      // '/slow' never answers.
    });
  };
}

describe('exporter server', () => {
  const dir = mkdtempSync(join(tmpdir(), 'exporter-server-'));
  const seen: IncomingMessage[] = [];
  const servers: Server[] = [];
  let exporter: Exporter;
  let http = '';
  let https = '';
  let mtls = '';

  const listen = async (server: Server): Promise<string> => {
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return `127.0.0.1:${(server.address() as AddressInfo).port}`;
  };
  const probe = async (
    module: string,
    target: string,
  ): Promise<{ status: number; text: string }> => {
    const url = `http://127.0.0.1:${exporter.port}/probe?module=${module}&target=${encodeURIComponent(target)}`;
    const response = await fetch(url);
    return { status: response.status, text: await response.text() };
  };

  beforeAll(async () => {
    // A self-signed certificate for a name that is not the address: server_name must be used.
    execFileSync(
      'openssl',
      [
        ...['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1'],
        ...['-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')],
        ...['-subj', '/CN=openbell-test', '-addext', 'subjectAltName=DNS:openbell-test'],
      ],
      { stdio: 'ignore' },
    );
    writeFileSync(join(dir, 'password'), 's3cret\n');
    const cert = readFileSync(join(dir, 'cert.pem'));
    const key = readFileSync(join(dir, 'key.pem'));
    http = await listen(createServer(handler(seen)));
    https = await listen(createHttpsServer({ cert, key }, handler(seen)));
    mtls = await listen(
      createHttpsServer(
        { cert, key, ca: cert, requestCert: true, rejectUnauthorized: true },
        handler(seen),
      ),
    );
    const tls = { ca_file: 'cert.pem', server_name: 'openbell-test' };
    const config = parseExporterConfig({
      modules: {
        default: { metrics },
        auth: {
          metrics,
          headers: { 'X-Scope': 'boards' },
          http_client_config: { basic_auth: { username: 'ann', password_file: 'password' } },
        },
        tls: { metrics, http_client_config: { tls_config: tls } },
        insecure: { metrics, http_client_config: { tls_config: { insecure_skip_verify: true } } },
        mtls: {
          metrics,
          http_client_config: {
            tls_config: { ...tls, cert_file: 'cert.pem', key_file: 'key.pem' },
          },
        },
        post: { metrics, body: { content: '{"q":1}' } },
        quick: { metrics, timeoutMs: 300 },
        accept500: { metrics, valid_status_codes: [500] },
        pinned: { metrics, allowedTargets: ['http://127\\.0\\.0\\.1:\\d+/doc'] },
      },
    });
    exporter = createExporter({ config, baseDir: dir, host: '127.0.0.1', port: 0, log });
    await exporter.start();
  });

  afterAll(async () => {
    await exporter?.close();
    for (const server of servers) {
      server.closeAllConnections();
      server.close();
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('probe maps a JSON target to metrics with probe_success 1, accepted by promtool', async () => {
    const { status, text } = await probe('default', `http://${http}/doc`);
    expect(status).toBe(200);
    expect(text).toContain('doc_up 1\n');
    expect(text).toContain('doc_events_total{type="A"} 5\ndoc_events_total{type="T"} 7\n');
    expect(text).toContain('probe_success 1\n');
    expect(text).toContain('probe_http_status_code 200\n');
    expect(text).toMatch(/^probe_duration_seconds \d/m);
    expect(text).toContain('probe_duplicate_series 0\n');
    expect(promtoolCheckMetrics(text)).toEqual({ status: 0, output: '' });
  });

  it('probe sends the module headers and basic auth read from password_file', async () => {
    expect(await probe('auth', `http://${http}/auth`)).toMatchObject({
      text: expect.stringContaining('probe_success 1\n') as unknown,
    });
    const request = seen.at(-1)!;
    expect(request.headers['x-scope']).toBe('boards');
    expect(request.headers.accept).toBe('application/json');
    // Without the module's credentials the same target refuses.
    expect((await probe('default', `http://${http}/auth`)).text).toContain(
      'probe_http_status_code 401\n',
    );
  });

  it('probe verifies TLS targets with ca_file and server_name', async () => {
    const tls = await probe('tls', `https://${https}/doc`);
    expect(tls.text).toContain('probe_success 1\n');
    expect(tls.text).toContain('doc_up 1\n');
    // The system CAs do not know a self-signed certificate.
    expect((await probe('default', `https://${https}/doc`)).text).toContain('probe_success 0\n');
    expect((await probe('insecure', `https://${https}/doc`)).text).toContain('probe_success 1\n');
  });

  it('probe presents the client certificate of cert_file and key_file', async () => {
    expect((await probe('mtls', `https://${mtls}/doc`)).text).toContain('probe_success 1\n');
    expect((await probe('tls', `https://${mtls}/doc`)).text).toContain('probe_success 0\n');
  });

  it('probe POSTs the module body and follows redirects', async () => {
    expect((await probe('post', `http://${http}/echo`)).text).toContain('doc_up 1\n');
    expect((await probe('default', `http://${http}/echo`)).text).not.toContain('doc_up');
    expect((await probe('default', `http://${http}/moved`)).text).toContain('doc_up 1\n');
  });

  it('probe answers 400 for an unknown module or a bad target', async () => {
    const unknown = await probe('nope', `http://${http}/doc`);
    expect(unknown).toEqual({
      status: 400,
      text: expect.stringContaining('unknown module "nope"') as unknown,
    });
    expect(unknown.text).toContain('known: default, auth');
    for (const target of ['not a url', 'ftp://example.com/x', ''])
      expect((await probe('default', target)).status).toBe(400);
  });

  it("probe refuses targets outside a module's allowedTargets, matched on the whole URL", async () => {
    expect(await probe('pinned', `http://${http}/doc`)).toMatchObject({ status: 200 });
    for (const target of [`http://${http}/doc2`, `http://${http}/x?u=http://127.0.0.1:1/doc`]) {
      const refused = await probe('pinned', target);
      expect(refused.status).toBe(403);
      expect(refused.text).toContain('target not allowed for module "pinned"');
    }
  });

  it('probe reports a failed fetch as probe_success 0 with status 200', async () => {
    const closed = createServer();
    const address = await listen(closed);
    closed.close();
    const failures = await Promise.all([
      probe('default', `http://${address}/doc`),
      probe('quick', `http://${http}/slow`),
      probe('default', `http://${http}/broken`),
      probe('default', `http://${http}/text`),
    ]);
    for (const failure of failures) {
      expect(failure.status).toBe(200);
      expect(failure.text).toContain('probe_success 0\n');
      expect(failure.text).not.toContain('doc_up');
    }
    expect(failures[2].text).toContain('probe_http_status_code 500\n');
    const accepted = await probe('accept500', `http://${http}/broken`);
    expect(accepted.text).toContain('probe_success 1\n');
  });

  it('serves /healthz and its own probe counts on /metrics', async () => {
    const base = `http://127.0.0.1:${exporter.port}`;
    expect(await (await fetch(`${base}/healthz`)).text()).toBe('ok\n');
    const own = await (await fetch(`${base}/metrics`)).text();
    expect(own).toMatch(
      /^openbell_exporter_probes_total\{module="default",result="success"\} \d+$/m,
    );
    expect(promtoolCheckMetrics(own).status).toBe(0);
    // Each family, with its type, is in docs/METRICS.md.
    const doc = readFileSync(new URL('../docs/METRICS.md', import.meta.url), 'utf8');
    const families = [...own.matchAll(/^# TYPE (\w+) (\w+)$/gm)];
    expect(families.map((m) => m[1])).toEqual([
      'openbell_exporter_probes_total',
      'openbell_exporter_probe_failures_total',
      'openbell_exporter_dropped_series_total',
    ]);
    for (const [, name, type] of families)
      expect(doc).toMatch(new RegExp(`\\| \`${name}\` +\\| ${type} `));
  });
});

describe('createExporter', () => {
  it('serves /metrics from the handler it is given', async () => {
    const config = parseExporterConfig({ modules: { default: { metrics } } });
    const exporter = createExporter({
      config,
      baseDir: '.',
      host: '127.0.0.1',
      port: 0,
      log,
      metricsHandler: (_req, res) => void res.type('text/plain').send('custom 1\n'),
    });
    await exporter.start();
    try {
      expect(await (await fetch(`http://127.0.0.1:${exporter.port}/metrics`)).text()).toBe(
        'custom 1\n',
      );
    } finally {
      await exporter.close();
    }
  });

  it('fails a probe whose body is longer than maxBodyBytes', async () => {
    const target = createServer(
      (_req, res) => void res.end(JSON.stringify({ pad: 'x'.repeat(4096) })),
    );
    await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
    const config = parseExporterConfig({ modules: { default: { metrics } } });
    const exporter = createExporter({
      config,
      baseDir: '.',
      host: '127.0.0.1',
      port: 0,
      log,
      maxBodyBytes: 1024,
    });
    await exporter.start();
    try {
      const port = (target.address() as AddressInfo).port;
      const url = `http://127.0.0.1:${exporter.port}/probe?target=http://127.0.0.1:${port}/`;
      expect(await (await fetch(url)).text()).toContain('probe_success 0\n');
    } finally {
      await exporter.close();
      target.close();
    }
  });

  it('names the key of a credential file it cannot read', () => {
    const config = parseExporterConfig({
      modules: {
        m: { metrics, http_client_config: { tls_config: { ca_file: 'missing-ca.pem' } } },
      },
    });
    expect(() =>
      createExporter({ config, baseDir: tmpdir(), host: '127.0.0.1', port: 0, log }),
    ).toThrow('modules.m.http_client_config.tls_config.ca_file: cannot read missing-ca.pem');
  });
});
