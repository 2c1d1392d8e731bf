import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it, vi } from 'vitest';

const CLI = fileURLToPath(new URL('../cli/main.ts', import.meta.url));
const CONFIG = fileURLToPath(new URL('./openbell.yml', import.meta.url));

describe('openbell exporter', () => {
  const dir = mkdtempSync(join(tmpdir(), 'exporter-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('exits non-zero with the validation message on a bad config', () => {
    const file = join(dir, 'bad.yml');
    writeFileSync(
      file,
      'modules:\n  m:\n    metrics:\n      - { name: a, path: "{.a}", valuetype: gauges }\n',
    );
    const run = spawnSync(process.execPath, [CLI, 'exporter', '--config', file], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(`${file}: invalid exporter config`);
    expect(run.stderr).toContain('modules.m.metrics[0].valuetype: expected gauge|counter|untyped');
    expect(run.stdout).toBe('');
  });

  it('exits non-zero naming a limit or an allowed target it cannot use', () => {
    for (const [flags, message] of [
      [['--max-series', '0'], 'maxSeries: expected a whole number >= 1, got 0'],
      [['--allowed-targets', 'ok (('], '"((": not a regular expression'],
    ]) {
      const run = spawnSync(process.execPath, [CLI, 'exporter', '--port', '0', ...flags!], {
        encoding: 'utf8',
        timeout: 30_000,
        env: { ...process.env, EXPORTER_CONFIG: CONFIG },
      });
      expect(run.status).toBe(1);
      expect(run.stderr).toContain(message);
    }
  });

  it('serves probes until SIGTERM, then exits 0', async () => {
    const child = spawn(process.execPath, [CLI, 'exporter', '--port', '0'], {
      env: { ...process.env, EXPORTER_CONFIG: CONFIG },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const lines: string[] = [];
    child.stdout.on('data', (chunk: Buffer) => lines.push(...chunk.toString().split('\n')));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    try {
      const port = await vi.waitFor(
        () => {
          const line = lines.find((l) => l.includes('"exporter listening"'));
          expect(line).toBeDefined();
          return (JSON.parse(line!) as { port: number }).port;
        },
        { timeout: 20_000, interval: 100 },
      );
      const base = `http://127.0.0.1:${port}`;
      expect(await (await fetch(`${base}/healthz`)).text()).toBe('ok\n');
      // Nothing listens on the target: the probe answers, and says it failed.
      const closed = createServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
      const target = `http://127.0.0.1:${(closed.address() as AddressInfo).port}/health`;
      await new Promise((resolve) => closed.close(resolve));
      const probe = await fetch(`${base}/probe?module=openbell&target=${target}`);
      expect(probe.status).toBe(200);
      expect(await probe.text()).toContain('probe_success 0\n');
      // The process's OpenTelemetry /metrics counts it by reason, every reason from 0.
      const own = await (await fetch(`${base}/metrics`)).text();
      expect(own).toContain(
        'openbell_exporter_probe_failures_total{module="openbell",reason="connection"} 1\n',
      );
      expect(own).toContain(
        'openbell_exporter_probe_failures_total{module="openbell",reason="too_many_series"} 0\n',
      );
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
