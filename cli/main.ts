import { Command } from 'commander';
import cluster from 'node:cluster';
import { readFileSync } from 'node:fs';
import { servicesCommand } from '../services/main.ts';
import { exporterCommand } from '../exporter/main.ts';
import { lbaCommand } from '../servers/lba/main.ts';
import { feedCommand } from '../servers/mdp/feed-main.ts';
import { mdpCommand } from '../servers/mdp/main.ts';
import { swarmCommand } from '../loadtest/swarm-main.ts';
import { labCommand } from '../replay/lab-main.ts';
import { checkCommand } from '../replay/check-main.ts';
import { recordCommand, replayCommand, synthCommand } from '../replay/main.ts';
import { boardsCommand } from './boards.ts';
import { tokenCommand } from './token.ts';

// The one entry point of the `openbell` CLI: each folder's main.ts contributes its commands.
const program = new Command('openbell')
  .description('Self-hosted market-data scanner pipeline with a replay lab.')
  .version(readVersion())
  .showHelpAfterError()
  .enablePositionalOptions()
  .addCommand(mdpCommand())
  .addCommand(feedCommand())
  .addCommand(lbaCommand())
  .addCommand(boardsCommand())
  .addCommand(tokenCommand())
  .addCommand(synthCommand())
  .addCommand(recordCommand())
  .addCommand(replayCommand())
  .addCommand(labCommand())
  .addCommand(checkCommand())
  .addCommand(swarmCommand())
  .addCommand(exporterCommand())
  .addCommand(servicesCommand());

try {
  await program.parseAsync();
} catch (error) {
  // A failed command is one clear line (its message names the field or service), not a stack;
  // DEBUG=openbell shows the stack.
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`openbell: ${message}\n`);
  if (process.env['DEBUG']?.includes('openbell') === true && error instanceof Error)
    process.stderr.write(`${error.stack}\n`);
  process.exitCode = 1;
  // A feed process of `openbell feed --processes` stays up on its IPC channel otherwise.
  if (cluster.isWorker) process.exit(1);
}

function readVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}
