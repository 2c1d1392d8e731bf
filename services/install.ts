import { spawn, spawnSync } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';

/** Runs a command to completion with output appended to `logFile`; resolves with its exit code. */
export function run(
  command: string,
  args: readonly string[],
  logFile: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  const fd = openSync(logFile, 'a');
  return new Promise<number>((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', fd, fd], env });
    child.on('error', () => resolve(127));
    child.on('exit', (code, signal) => resolve(code ?? (signal === null ? 1 : 128)));
  }).finally(() => closeSync(fd));
}

/** Why apt-get cannot be used here, or `undefined` when it can. */
export function aptUnavailableReason(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (spawnSync('sh', ['-c', 'command -v apt-get'], { stdio: 'ignore' }).status !== 0)
    return 'no apt-get (not Debian/Ubuntu)';
  if (process.getuid?.() !== 0) return 'not running as root';
  return undefined;
}

/**
 * Installs Debian packages without prompts. Tries with the current package lists first (fast,
 * offline-friendly) and refreshes them only when that fails.
 */
export async function aptInstall(packages: readonly string[], logFile: string): Promise<boolean> {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  const install = ['install', '-y', '--no-install-recommends', ...packages];
  if ((await run('apt-get', install, logFile, env)) === 0) return true;
  if ((await run('apt-get', ['update'], logFile, env)) !== 0) return false;
  return (await run('apt-get', install, logFile, env)) === 0;
}

/** True when a Docker engine answers and the compose plugin is installed. */
export function dockerComposeAvailable(): boolean {
  const ok = (args: string[]): boolean =>
    spawnSync('docker', args, { stdio: 'ignore', timeout: 10_000 }).status === 0;
  return ok(['info']) && ok(['compose', 'version']);
}
