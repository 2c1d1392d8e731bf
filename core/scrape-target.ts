import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** A Prometheus `file_sd` target: where to scrape, and the labels its series get. */
export interface ScrapeTarget {
  /** `host:port` of the `/metrics` endpoint. */
  address: string;
  /** e.g. `{ service: 'lba', instance: 'lba-2', run: '…' }`. */
  labels: Record<string, string>;
}

/**
 * Registers `target` with a Prometheus that reads `dir/*.json` (grafana/prometheus.yml's
 * `file_sd_configs`): writes `dir/<name>.json` atomically (Prometheus may read at any moment) and
 * resolves with the function that removes it again.
 */
export async function registerScrapeTarget(
  dir: string,
  name: string,
  target: ScrapeTarget,
): Promise<() => Promise<void>> {
  if (!/^[A-Za-z0-9._-]+$/.test(name))
    throw new Error(`scrape target name ${name}: use [A-Za-z0-9._-]`);
  await mkdir(dir, { recursive: true });
  const file = join(dir, `${name}.json`);
  const body = JSON.stringify([{ targets: [target.address], labels: target.labels }], null, 2);
  await writeFile(`${file}.tmp`, `${body}\n`);
  await rename(`${file}.tmp`, file);
  return () => rm(file, { force: true });
}

/**
 * Removes the targets a process registered as `<service>-<pid>.json` when that pid no longer
 * runs on this machine (a process killed before it could unregister): Prometheus would report
 * them down for ever. Resolves with the names removed.
 */
export async function pruneDeadTargets(dir: string): Promise<string[]> {
  const files = await readdir(dir).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const file of files) {
    const pid = /^[a-z]+-(\d+)\.json$/.exec(file)?.[1];
    if (pid === undefined || isAlive(Number(pid))) continue;
    await rm(join(dir, file), { force: true });
    removed.push(file);
  }
  return removed;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it runs, as another user.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
