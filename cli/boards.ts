import { Command, Option } from 'commander';
import { Redis } from 'ioredis';
import {
  BOARD_NAMES,
  DEFAULTS,
  assertDate,
  createBoardStore,
  createNames,
  redactUrl,
  tradingDateOf,
  ServiceError,
  type BoardsView,
} from '../core/index.ts';
import {
  boardWindowOptions,
  connectionOptions,
  integer,
  parseBoardFlags,
  parseConnectionFlags,
  type BoardWindowFlags,
  type ConnectionFlags,
} from './options.ts';

interface BoardsFlags extends ConnectionFlags, BoardWindowFlags {
  date?: string;
  top: number;
  json?: boolean;
}

/** `openbell boards`: prints the live boards of a trading date from Redis. */
export function boardsCommand(): Command {
  const command = new Command('boards').description(
    'Print the boards of a trading date (default: the newest with data).',
  );
  // Boards are read from Redis only.
  const redisOnly = connectionOptions().filter((option) => option.long !== '--amqp-url');
  for (const option of [...redisOnly, ...boardWindowOptions()]) command.addOption(option);
  command
    .addOption(new Option('--date <YYYY-MM-DD>', 'trading date (America/New_York)'))
    .addOption(
      new Option('--top <n>', 'rows per board (at most 500)')
        .argParser(integer)
        .default(DEFAULTS.board.top),
    )
    .addOption(new Option('--json', 'print {"date","boards":{…}} as JSON'))
    .action(async (flags: BoardsFlags) => {
      const connection = parseConnectionFlags(flags);
      const board = parseBoardFlags(flags);
      if (flags.date !== undefined) assertDate(flags.date);
      const redis = new Redis(connection.redisUrl, {
        lazyConnect: true,
        maxRetriesPerRequest: 1,
        retryStrategy: () => null,
      });
      let lastError = '';
      redis.on('error', (error: Error) => (lastError = error.message));
      try {
        await redis.connect().catch(() => {
          throw new ServiceError(
            'redis',
            `cannot connect to ${redactUrl(connection.redisUrl)} (${lastError})`,
          );
        });
        const store = createBoardStore({
          redis,
          names: createNames({ namespace: connection.namespace }),
          board,
        });
        const date = flags.date ?? (await store.latestDate()) ?? tradingDateOf(Date.now());
        // Momentum depends on the window end: computed now, read-only, for an exact answer.
        const view = await store.readBoards(date, board.top, { freshMomentum: true });
        process.stdout.write(
          flags.json === true ? `${JSON.stringify(view)}\n` : formatBoards(view),
        );
      } finally {
        redis.disconnect();
      }
    });
  return command;
}

/** A plain-text rendering of the boards, one block per board. */
export function formatBoards(view: BoardsView): string {
  const lines = [`boards of ${view.date}`];
  for (const name of BOARD_NAMES) {
    lines.push('', `${name}:`);
    const rows = view.boards[name];
    if (rows.length === 0) lines.push('  (empty)');
    rows.forEach((row, n) => {
      const price = row.price === null ? '-' : row.price.toFixed(2);
      const volume = row.volume === null ? '-' : String(row.volume);
      lines.push(
        `  ${String(n + 1).padStart(3)}. ${row.sym.padEnd(10)} ${row.score.toFixed(4).padStart(14)}  ${price.padStart(10)} ${volume.padStart(12)}`,
      );
    });
  }
  return `${lines.join('\n')}\n`;
}
