import { Command } from 'commander';
import { servicesCommand } from '../services/main.ts';

// The one entry point of the `openbell` CLI: each folder's main.ts contributes its commands.
const program = new Command('openbell')
  .description('Self-hosted market-data scanner pipeline with a replay lab.')
  .version(process.env['npm_package_version'] ?? '0.1.0')
  .showHelpAfterError()
  .addCommand(servicesCommand());

await program.parseAsync();
