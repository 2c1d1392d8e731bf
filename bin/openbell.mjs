#!/usr/bin/env node
// Runs the openbell CLI on Node 24 or later, which runs TypeScript directly. On an older `node`
// (Debian ships 20), it re-runs itself with the Node 24 that `npm ci` installs from the `node`
// devDependency, forwarding signals and the exit status.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = fileURLToPath(new URL('../cli/main.ts', import.meta.url));
const major = Number(process.versions.node.split('.')[0]);

if (major >= 24) {
  await import(entry);
} else {
  const pinned = fileURLToPath(new URL('../node_modules/node/bin/node', import.meta.url));
  if (!existsSync(pinned)) {
    process.stderr.write(
      `openbell needs Node 24 or later (this is ${process.version}); run \`npm ci\` in ${fileURLToPath(new URL('..', import.meta.url))} to install it.\n`,
    );
    process.exit(1);
  }
  const child = spawn(pinned, [entry, ...process.argv.slice(2)], { stdio: 'inherit' });
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'])
    process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal === null ? 1 : 128)));
}
