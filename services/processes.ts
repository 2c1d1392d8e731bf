import { spawn } from 'node:child_process';
import { accessSync, constants, openSync, closeSync, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** Resolves an executable: an absolute candidate that exists, else the first match on PATH. */
export function findExecutable(
  candidates: readonly string[],
  path = process.env['PATH'] ?? '',
): string | undefined {
  for (const candidate of candidates) {
    const tries = candidate.startsWith('/')
      ? [candidate]
      : path
          .split(delimiter)
          .filter(Boolean)
          .map((dir) => join(dir, candidate));
    for (const file of tries) {
      try {
        accessSync(file, constants.X_OK);
        return file;
      } catch {
        // Not here; keep looking.
      }
    }
  }
  return undefined;
}

/** Options of {@link spawnDetached}. */
export interface SpawnDetachedOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** File that receives the process's stdout and stderr (appended). */
  logFile: string;
}

/**
 * Starts a long-lived process in its own process group, outliving this one, with output to a log
 * file. Returns its pid.
 */
export function spawnDetached(
  command: string,
  args: readonly string[],
  options: SpawnDetachedOptions,
): number {
  const fd = openSync(options.logFile, 'a');
  try {
    const child = spawn(command, args, {
      detached: true,
      stdio: ['ignore', fd, fd],
      env: options.env ?? process.env,
      cwd: options.cwd,
    });
    if (child.pid === undefined) throw new Error(`could not start ${command}`);
    child.on('error', () => undefined);
    child.unref();
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

/** True when a process with this pid exists and its command line mentions `needle`. */
export function isOurProcess(pid: number, needle: string): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(needle);
  } catch {
    // No /proc (not Linux): the pid exists, which is all we can check.
    return true;
  }
}

/** Sends SIGTERM, waits up to `graceMs` for the process to go, then SIGKILLs it. */
export async function stopProcess(pid: number, graceMs: number): Promise<'stopped' | 'killed'> {
  const alive = (): boolean => {
    try {
      process.kill(pid, 0);
      return !isZombie(pid);
    } catch {
      return false;
    }
  };
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return 'stopped';
  }
  const deadline = Date.now() + graceMs;
  while (alive() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (!alive()) return 'stopped';
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    process.kill(pid, 'SIGKILL');
  }
  return 'killed';
}

function isZombie(pid: number): boolean {
  try {
    return /^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** The last `lines` lines of a text file, or '' when it cannot be read. */
export function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
