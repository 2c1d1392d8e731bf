import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stateDir } from '../services/ensure.ts';
import { aptInstall, aptUnavailableReason } from '../services/install.ts';
import { findExecutable, tail } from '../services/processes.ts';

/** Where Debian's `chromium` package puts the browser. */
export const CHROMIUM_PATH = '/usr/bin/chromium';
const PACKAGE = 'chromium';

let pending: Promise<string> | undefined;

/**
 * Resolves with the path of a Chromium for the browser tests, installing Debian's `chromium`
 * package with apt-get (as root, through the same code path as the services) when it is missing.
 * Throws an error naming the package to install when it cannot. Concurrent callers share one
 * install.
 */
export function ensureChromium(): Promise<string> {
  pending ??= locateOrInstall().catch((error: unknown) => {
    pending = undefined;
    throw error;
  });
  return pending;
}

async function locateOrInstall(): Promise<string> {
  if (findExecutable([CHROMIUM_PATH]) !== undefined) return CHROMIUM_PATH;
  const reason = aptUnavailableReason();
  if (reason !== undefined) {
    throw new Error(
      `Chromium is needed for the browser tests and ${CHROMIUM_PATH} is missing; apt-get cannot ` +
        `install it here (${reason}). Install it yourself (Debian: apt-get install ${PACKAGE}).`,
    );
  }
  const dir = stateDir(fileURLToPath(new URL('..', import.meta.url)));
  mkdirSync(dir, { recursive: true });
  const logFile = join(dir, 'apt.log');
  // aptInstall tries with the current package lists, then runs apt-get update and tries again.
  const ok = await aptInstall([PACKAGE], logFile);
  if (ok && findExecutable([CHROMIUM_PATH]) !== undefined) return CHROMIUM_PATH;
  throw new Error(
    `apt-get install ${PACKAGE} ${ok ? `did not provide ${CHROMIUM_PATH}` : 'failed'}; ` +
      `install Chromium yourself (Debian: apt-get install ${PACKAGE}). ${logFile} ends:\n` +
      tail(logFile, 5),
  );
}
