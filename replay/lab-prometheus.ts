import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { copyFile, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { findExecutable } from '../services/processes.ts';
import { probeHttp, waitFor } from '../services/probe.ts';
import { freePort } from './lab-probe.ts';

const RULES_DIR = fileURLToPath(new URL('../grafana/rules', import.meta.url));

/** How often the run's Prometheus scrapes: fine enough for a run of a few seconds. */
export const RUN_SCRAPE_INTERVAL_S = 1;

/** A Prometheus of one lab run, its data kept in the run's directory. */
export interface RunPrometheus {
  /** Base URL of its HTTP API. */
  readonly url: string;
  /** `file_sd` directory it watches: {@link registerScrapeTarget} files go here. */
  readonly targetsDir: string;
  /** Stops it (SIGTERM, its TSDB flushed); idempotent. */
  close(): Promise<void>;
}

/** The Prometheus binary: `--prometheus <path>`, else one on PATH; undefined when none. */
export function findPrometheus(explicit?: string): string | undefined {
  return findExecutable(
    explicit === undefined ? ['prometheus', '/usr/bin/prometheus'] : [explicit],
  );
}

/**
 * Starts a Prometheus for a lab run (or, on an existing `dir`, to read a past run again): 1 s
 * scrapes of the targets registered in `dir/targets`, openbell's recording and alerting rules
 * (grafana/rules), and its TSDB in `dir/data`, so the run's metrics stay with its report.
 */
export async function startRunPrometheus(dir: string, binary: string): Promise<RunPrometheus> {
  const targetsDir = join(dir, 'targets');
  const rulesDir = join(dir, 'rules');
  await mkdir(targetsDir, { recursive: true });
  await mkdir(rulesDir, { recursive: true });
  await mkdir(join(dir, 'data'), { recursive: true });
  for (const file of await readdir(RULES_DIR).catch(() => [] as string[])) {
    if (file.endsWith('.yml') && !file.endsWith('.test.yml'))
      await copyFile(join(RULES_DIR, file), join(rulesDir, file));
  }
  const config = {
    global: {
      scrape_interval: `${RUN_SCRAPE_INTERVAL_S}s`,
      evaluation_interval: `${RUN_SCRAPE_INTERVAL_S}s`,
    },
    // Relative to the config file: the report directory can move and be read again.
    rule_files: ['rules/*.yml'],
    scrape_configs: [
      {
        job_name: 'openbell',
        file_sd_configs: [{ files: ['targets/*.json'], refresh_interval: '1s' }],
      },
    ],
  };
  await writeFile(join(dir, 'prometheus.yml'), stringify(config));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const log = createWriteStream(join(dir, 'prometheus.log'), { flags: 'a' });
  const child = spawn(
    binary,
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      '--storage.tsdb.retention.time=100y',
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    await waitReady(url, child, 30_000);
  } catch (error) {
    child.kill('SIGKILL');
    await exited;
    throw error;
  }
  let closed: Promise<void> | undefined;
  return {
    url,
    targetsDir,
    close: () =>
      (closed ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        await exited;
        log.end();
      })()),
  };
}

/** Polls `/-/ready` until Prometheus answers; fails at once when the process exits. */
async function waitReady(url: string, child: ChildProcess, timeoutMs: number): Promise<void> {
  const result = await waitFor(() => {
    if (child.exitCode !== null) throw new Error(`prometheus exited (${child.exitCode}) at start`);
    return probeHttp(`${url}/-/ready`);
  }, timeoutMs);
  if (!result.ok)
    throw new Error(`prometheus not ready at ${url} within ${timeoutMs} ms: ${result.error}`);
}

/**
 * Waits until Prometheus scrapes `expected` targets of the run successfully (it takes up to
 * ~5 s to act on new file_sd targets); resolves false when `timeoutMs` passes first.
 */
export async function waitForTargets(
  url: string,
  run: string,
  expected: number,
  timeoutMs = 20_000,
): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const body = (await fetch(`${url}/api/v1/targets?state=active`)
      .then((r) => r.json())
      .catch(() => undefined)) as
      | { data?: { activeTargets?: { labels: Record<string, string>; health: string }[] } }
      | undefined;
    const up = (body?.data?.activeTargets ?? []).filter(
      (t) => t.labels['run'] === run && t.health === 'up',
    );
    if (up.length >= expected) return true;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return false;
}
